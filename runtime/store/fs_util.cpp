#include "runtime/store/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <vector>
#include <utility>

#include "common/unique_fd.h"
#include "runtime/store/btrfs.h"

namespace specula::store {
namespace {

Status EmptyDirAt(UniqueFd dirfd, dev_t dev, const std::string& where);

// Deletes the subvolume `name` under `parent_fd`. One holding a subvolume of
// its own cannot be deleted whole (ENOTEMPTY): it is emptied, which deletes
// that one, and then removed like a directory.
Status RemoveSubvolume(int parent_fd, const char* name, const std::string& where) {
  Status st = btrfs::DestroySubvolume(parent_fd, name, where);
  if (st.ok() || st.error().sys_errno() != ENOTEMPTY) return st;
  int sub = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) return Error::FromErrno("open " + where);
  struct stat sb;
  if (::fstat(sub, &sb) != 0) {
    Error e = Error::FromErrno("stat " + where);
    ::close(sub);
    return e;
  }
  SPECULA_TRY(EmptyDirAt(UniqueFd(sub), sb.st_dev, where));
  if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0) return Error::FromErrno("rmdir " + where);
  return Status::Ok();
}

// Removes every entry inside the directory open at `dirfd` (which it
// consumes), staying on device `dev`.
Status EmptyDirAt(UniqueFd dirfd, dev_t dev, const std::string& where) {
  DIR* d = ::fdopendir(dirfd.get());
  if (d == nullptr) return Error::FromErrno("fdopendir " + where);
  int fd = dirfd.Release();  // owned by d now
  Status st;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat sb;
    if (::fstatat(fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      st = Error::FromErrno("stat " + where + "/" + e->d_name);
      break;
    }
    if (S_ISDIR(sb.st_mode)) {
      if (sb.st_dev != dev) {
        // A btrfs subvolume (a branch volume, a sealed layer) has a device
        // of its own but is no mount point: deleted whole, not walked.
        if (btrfs::IsSubvolumeRoot(fd, e->d_name)) {
          st = RemoveSubvolume(fd, e->d_name, where + "/" + e->d_name);
          if (!st.ok()) break;
          continue;
        }
        st = Error(Code::kFailedPrecondition, "remove " + where + "/" + e->d_name +
                                                  ": is a mount point, not removing through it");
        break;
      }
      int sub = ::openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        st = Error::FromErrno("open " + where + "/" + e->d_name);
        break;
      }
      st = EmptyDirAt(UniqueFd(sub), dev, where + "/" + e->d_name);
      if (!st.ok()) break;
      if (::unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0) {
        st = Error::FromErrno("rmdir " + where + "/" + e->d_name);
        break;
      }
    } else if (::unlinkat(fd, e->d_name, 0) != 0) {
      st = Error::FromErrno("unlink " + where + "/" + e->d_name);
      break;
    }
  }
  ::closedir(d);
  return st;
}

}  // namespace

Status RemoveTree(const std::string& path) {
  struct stat sb;
  if (::lstat(path.c_str(), &sb) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Error::FromErrno("stat " + path);
  }
  if (!S_ISDIR(sb.st_mode)) {
    if (::unlink(path.c_str()) != 0) return Error::FromErrno("unlink " + path);
    return Status::Ok();
  }
  // Sealed layers are made read-only; give the owner write access back so
  // that removal works the same for any caller.
  ::chmod(path.c_str(), 0700);
  {
    auto slash = path.find_last_of('/');
    std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    UniqueFd pfd(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    std::string name = path.substr(slash + 1);
    if (pfd && slash != std::string::npos && btrfs::IsSubvolumeRoot(pfd.get(), name.c_str())) {
      UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir) return Error::FromErrno("open " + parent);
      return RemoveSubvolume(dir.get(), name.c_str(), path);
    }
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open " + path);
  SPECULA_TRY(EmptyDirAt(UniqueFd(fd), sb.st_dev, path));
  if (::rmdir(path.c_str()) != 0) return Error::FromErrno("rmdir " + path);
  return Status::Ok();
}

Result<uint64_t> DiskUsage(const std::string& path) {
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<std::string> todo{path};
  while (!todo.empty()) {
    std::string p = std::move(todo.back());
    todo.pop_back();
    struct stat sb;
    if (::lstat(p.c_str(), &sb) != 0) {
      if (errno == ENOENT) continue;
      return Error::FromErrno("stat " + p);
    }
    if (sb.st_nlink > 1 && !S_ISDIR(sb.st_mode) && !seen.insert({sb.st_dev, sb.st_ino}).second) continue;
    total += static_cast<uint64_t>(sb.st_blocks) * 512;
    if (!S_ISDIR(sb.st_mode)) continue;
    DIR* d = ::opendir(p.c_str());
    if (d == nullptr) return Error::FromErrno("opendir " + p);
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      todo.push_back(p + "/" + e->d_name);
    }
    ::closedir(d);
  }
  return total;
}

Status MakeDirs(const std::string& path, uint32_t mode) {
  if (path.empty()) return Error(Code::kInvalidArgument, "mkdir: empty path");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return Error::FromErrno("mkdir " + prefix);
    }
  }
  return Status::Ok();
}

Result<std::string> NewId(char prefix) {
  unsigned char raw[5];
  size_t got = 0;
  while (got < sizeof(raw)) {
    ssize_t n = ::getrandom(raw + got, sizeof(raw) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("getrandom");
    }
    got += static_cast<size_t>(n);
  }
  uint64_t bits = 0;
  for (unsigned char b : raw) bits = (bits << 8) | b;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id(1, prefix);
  for (int shift = 35; shift >= 0; shift -= 5) id += kAlphabet[(bits >> shift) & 31];
  return id;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace specula::store
