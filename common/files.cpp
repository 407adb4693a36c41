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

#include <cstdio>  // renameat2
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "common/safe_fs.h"
#include "common/unique_fd.h"

namespace specula {
namespace {

// The walkers below work on trees a sandboxed command shaped: any depth (far
// past PATH_MAX), so they never recurse and never build a path per level.
// They keep at most this many directories open, however deep the tree.
constexpr size_t kMaxOpenDirs = 64;

Status EmptyDirAt(UniqueFd dirfd, dev_t dev, const std::string& where);

// BTRFS_IOC_SNAP_DESTROY of `name` under `parent_fd`; false with errno set
// when the kernel refused (ENOTEMPTY: it holds a subvolume of its own).
bool DestroySubvolume(int parent_fd, const char* name) {
  btrfs_ioctl_vol_args a{};
  if (std::strlen(name) >= sizeof(a.name)) {
    errno = ENAMETOOLONG;
    return false;
  }
  std::strcpy(a.name, name);
  return ::ioctl(parent_fd, BTRFS_IOC_SNAP_DESTROY, &a) == 0;
}

// Deletes the subvolume `name` under `parent_fd` (BTRFS_IOC_SNAP_DESTROY).
// One holding a subvolume of its own cannot be deleted whole (ENOTEMPTY):
// it is emptied, which deletes that one, and then removed like a directory.
Status RemoveSubvolume(int parent_fd, const char* name, const std::string& where) {
  if (DestroySubvolume(parent_fd, name)) return Status::Ok();
  if (errno == ENAMETOOLONG) return Error(Code::kInvalidArgument, "subvolume name too long: " + where);
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

// One directory on the removal walk's stack.
struct RmLevel {
  DIR* d = nullptr;   // owns the directory's fd
  int fd = -1;        // dirfd(d)
  dev_t dev = 0;      // its device: a subvolume below has its own
  std::string name;   // its name in the level above (empty: the root)
  std::string where;  // for messages only
  bool removed_some = false;  // this readdir pass removed entries: read again
};

// Removes every entry inside the directory open at `dirfd` (which it
// consumes), staying on device `dev`: a different device below is refused,
// except a btrfs subvolume, which is deleted whole (or emptied the same way
// and removed when it holds one of its own). Symlinks are removed, never
// followed; every directory is opened O_NOFOLLOW and checked to be the
// directory fstatat saw. Iterative: a depth-first walk with an explicit
// stack of at most kMaxOpenDirs open directories. A directory found below
// a full stack is first moved up (renameat2 RENAME_NOREPLACE, never over
// anything) into the directory being emptied under a fresh name, which a
// later pass there removes; the tree is being deleted, so where its parts
// wait does not matter, and the stack and the fds stay bounded at any depth.
Status EmptyDirAt(UniqueFd dirfd, dev_t dev, const std::string& where) {
  DIR* d = ::fdopendir(dirfd.get());
  if (d == nullptr) return Error::FromErrno("fdopendir " + where);
  int rootfd = dirfd.Release();  // owned by d now
  std::vector<RmLevel> stack;
  stack.push_back({d, rootfd, dev, "", where, false});
  uint64_t hoisted = 0;
  Status st;
  while (!stack.empty()) {
    RmLevel& top = stack.back();
    errno = 0;
    dirent* e = ::readdir(top.d);
    if (e == nullptr) {
      if (errno != 0) {
        st = Error::FromErrno("readdir " + top.where);
        break;
      }
      // Entries moved in (hoisted) or renamed while reading may have been
      // missed: a directory is empty only after a pass that found nothing.
      if (top.removed_some) {
        top.removed_some = false;
        ::rewinddir(top.d);
        continue;
      }
      std::string name = std::move(top.name), done_where = std::move(top.where);
      ::closedir(top.d);
      stack.pop_back();
      if (stack.empty()) break;  // the root: the caller removes it
      if (::unlinkat(stack.back().fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        st = Error::FromErrno("rmdir " + done_where);
        break;
      }
      continue;
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    top.removed_some = true;
    std::string name = e->d_name;
    std::string child_where = top.where + "/" + name;
    struct stat sb;
    if (::fstatat(top.fd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      st = Error::FromErrno("stat " + child_where);
      break;
    }
    if (!S_ISDIR(sb.st_mode)) {
      if (::unlinkat(top.fd, name.c_str(), 0) != 0 && errno != ENOENT) {
        st = Error::FromErrno("unlink " + child_where);
        break;
      }
      continue;
    }
    if (sb.st_dev != top.dev) {
      // A btrfs subvolume (a branch volume, a sealed layer) has a device
      // of its own but is no mount point: deleted whole, not walked, unless
      // it holds a subvolume itself; then it is emptied like a directory.
      if (!IsBtrfsSubvolumeRoot(top.fd, name.c_str())) {
        st = Error(Code::kFailedPrecondition, "remove " + child_where + ": is a mount point, not removing through it");
        break;
      }
      if (DestroySubvolume(top.fd, name.c_str())) continue;
      if (errno != ENOTEMPTY) {
        st = Error::FromErrno("delete subvolume " + child_where);
        break;
      }
    }
    if (stack.size() >= kMaxOpenDirs) {
      // Move it up into the root. A plain directory inside a subvolume
      // cannot leave it (EXDEV): then into the topmost open directory of
      // its own subvolume.
      auto move_into = [&](size_t target) -> int {
        for (;;) {
          std::string fresh = ".specula-rm." + std::to_string(hoisted++);
          if (::renameat2(top.fd, name.c_str(), stack[target].fd, fresh.c_str(), RENAME_NOREPLACE) == 0) {
            stack[target].removed_some = true;
            return 0;
          }
          if (errno != EEXIST) return errno;
        }
      };
      int err = move_into(0);
      if (err == EXDEV) {
        size_t i = 1;
        while (i + 1 < stack.size() && stack[i].dev != top.dev) ++i;
        if (i + 1 < stack.size()) err = move_into(i);
      }
      if (err == 0 || err == ENOENT) continue;  // moved, or gone meanwhile
      // Not movable (nested subvolumes past the bound, a bind mount): it is
      // walked below, past the bound, rather than failing the removal.
    }
    int sub = ::openat(top.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      if (errno == ENOENT) continue;
      st = Error::FromErrno("open " + child_where);
      break;
    }
    struct stat now;
    if (::fstat(sub, &now) != 0 || now.st_dev != sb.st_dev || now.st_ino != sb.st_ino) {
      ::close(sub);
      st = Error(Code::kAborted, "remove " + child_where + ": replaced while being removed");
      break;
    }
    DIR* sd = ::fdopendir(sub);
    if (sd == nullptr) {
      st = Error::FromErrno("fdopendir " + child_where);
      ::close(sub);
      break;
    }
    dev_t sub_dev = sb.st_dev;
    stack.push_back({sd, sub, sub_dev, std::move(name), std::move(child_where), false});
  }
  for (auto& l : stack) ::closedir(l.d);
  return st;
}

// One directory on DiskUsage's stack. Its names are read when it is
// entered, so its fd may be closed while the walk is deeper down.
struct DuLevel {
  UniqueFd fd;  // closed while more than kMaxOpenDirs levels are deeper
  ino_t ino = 0;
  std::vector<std::string> names;
  size_t next = 0;
};

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

Status EmptyDirectoryAt(int dir_fd, const std::string& where) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open " + where);
  UniqueFd own(fd);
  struct stat sb;
  if (::fstat(own.get(), &sb) != 0) return Error::FromErrno("stat " + where);
  return EmptyDirAt(std::move(own), sb.st_dev, where);
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

// Walks by fds only: every entry is looked at with fstatat(AT_SYMLINK_NOFOLLOW)
// and every directory opened with O_NOFOLLOW relative to its parent, and
// checked to be the one fstatat saw, so a live branch that swaps a directory
// for a symlink (to "/", say) mid-walk cannot send it anywhere: the swapped
// entry is skipped. Nothing on another device is counted or entered. At most
// kMaxOpenDirs fds are open: above that the walk closes the shallowest ones
// and reopens a parent on the way back up through "..", accepted only if it
// is the very directory (device and inode) it left; a branch that moved it
// away meanwhile ends the walk with kAborted rather than a guess.
Result<uint64_t> DiskUsage(const std::string& path) {
  int rfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rfd < 0) {
    if (errno == ENOENT) return uint64_t{0};
    if (errno != ENOTDIR && errno != ELOOP) return Error::FromErrno("open " + path);
    struct stat sb;  // not a directory: its own blocks
    if (::lstat(path.c_str(), &sb) != 0) {
      if (errno == ENOENT) return uint64_t{0};
      return Error::FromErrno("stat " + path);
    }
    return static_cast<uint64_t>(sb.st_blocks) * 512;
  }
  UniqueFd root(rfd);
  struct stat rst;
  if (::fstat(root.get(), &rst) != 0) return Error::FromErrno("stat " + path);
  const dev_t dev = rst.st_dev;
  uint64_t total = static_cast<uint64_t>(rst.st_blocks) * 512;
  std::set<ino_t> seen;  // hard-linked inodes (one device), counted once
  std::vector<DuLevel> stack;
  {
    SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(root.get()));
    stack.push_back({std::move(root), rst.st_ino, std::move(names), 0});
  }
  size_t lowest_open = 1;  // stack[0] and stack[lowest_open..] have fds
  while (!stack.empty()) {
    DuLevel& top = stack.back();
    if (top.next == top.names.size()) {
      if (stack.size() >= 2 && stack.size() - 2 < lowest_open && stack.size() - 2 != 0) {
        // The parent's fd was closed: reopen it through "..", if that is it.
        size_t p = stack.size() - 2;
        int up = ::openat(top.fd.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat ust;
        if (up < 0 || ::fstat(up, &ust) != 0 || ust.st_dev != dev || ust.st_ino != stack[p].ino) {
          if (up >= 0) ::close(up);
          return Error(Code::kAborted, "disk usage of " + path + ": the tree changed during the walk");
        }
        stack[p].fd.Reset(up);
        lowest_open = p;
      }
      stack.pop_back();
      if (lowest_open > stack.size()) lowest_open = stack.size();
      continue;
    }
    const std::string& name = top.names[top.next++];
    struct stat sb;
    if (::fstatat(top.fd.get(), name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed meanwhile
      return Error::FromErrno("stat " + path + "/.../" + name);
    }
    if (sb.st_dev != dev) continue;  // a mount or subvolume below: not ours to count
    if (sb.st_nlink > 1 && !S_ISDIR(sb.st_mode) && !seen.insert(sb.st_ino).second) continue;
    total += static_cast<uint64_t>(sb.st_blocks) * 512;
    if (!S_ISDIR(sb.st_mode)) continue;
    int sub = ::openat(top.fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      // Swapped for a symlink or a file, or removed, since the fstatat.
      if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) continue;
      return Error::FromErrno("open " + path + "/.../" + name);
    }
    UniqueFd sfd(sub);
    struct stat now;
    if (::fstat(sfd.get(), &now) != 0) return Error::FromErrno("stat " + path + "/.../" + name);
    if (now.st_dev != sb.st_dev || now.st_ino != sb.st_ino) continue;  // swapped: skip it
    SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(sfd.get()));
    stack.push_back({std::move(sfd), now.st_ino, std::move(names), 0});
    // Bound the open fds: close the shallowest open one (never the root).
    if (stack.size() - lowest_open + 1 > kMaxOpenDirs) {
      stack[lowest_open].fd.Reset();
      ++lowest_open;
    }
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
