#include "common/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "common/safe_fs.h"
#include "common/unique_fd.h"

namespace specula {
namespace {

Status EmptyDirAt(UniqueFd dirfd, dev_t dev, const std::string& where);

// Deletes the subvolume `name` under `parent_fd` (BTRFS_IOC_SNAP_DESTROY).
// One holding a subvolume of its own cannot be deleted whole (ENOTEMPTY):
// it is emptied, which deletes that one, and then removed like a directory.
Status RemoveSubvolume(int parent_fd, const char* name, const std::string& where) {
  btrfs_ioctl_vol_args a{};
  if (std::strlen(name) >= sizeof(a.name)) return Error(Code::kInvalidArgument, "subvolume name too long: " + where);
  std::strcpy(a.name, name);
  if (::ioctl(parent_fd, BTRFS_IOC_SNAP_DESTROY, &a) == 0) return Status::Ok();
  if (errno != ENOTEMPTY) return Error::FromErrno("delete subvolume " + where);
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
        if (IsBtrfsSubvolumeRoot(fd, e->d_name)) {
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

bool IsBtrfsSubvolumeRoot(int dirfd, const char* name) {
  struct statx sx {};
  if (::statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE | STATX_INO, &sx) != 0) return false;
  if (!S_ISDIR(sx.stx_mode) || sx.stx_ino != BTRFS_FIRST_FREE_OBJECTID) return false;
  // The top of a mount (the store's own, a bind of a subvolume) has inode
  // 256 as well, but it is a mount point: never removed through.
  if ((sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 && (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0) {
    return false;
  }
  UniqueFd fd(::openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct statfs fs {};
  return fd && ::fstatfs(fd.get(), &fs) == 0 && static_cast<uint64_t>(fs.f_type) == BTRFS_SUPER_MAGIC;
}

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
    if (pfd && slash != std::string::npos && IsBtrfsSubvolumeRoot(pfd.get(), name.c_str())) {
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

Result<std::string> ReadTextFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + path);
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  return out;
}

Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) return Error(Code::kInternal, "mkdir " + p.parent_path().string() + ": " + ec.message());
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Error::FromErrno("open " + tmp);
  if (Status st = WriteAll(fd.get(), data); !st.ok()) {
    ::unlink(tmp.c_str());
    return std::move(st).Context(tmp);
  }
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = Error::FromErrno("rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return e;
  }
  return Status::Ok();
}

}  // namespace specula
