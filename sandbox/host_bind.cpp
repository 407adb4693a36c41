#include "sandbox/host_bind.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace specula::sandbox {

Result<HostBindTree> CloneHostBind(const std::string& host_path, bool read_only) {
  if (host_path.empty() || host_path.front() != '/') {
    return Error(Code::kInvalidArgument, "bind source '" + host_path + "' must be absolute");
  }
  open_how how{};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS;
  UniqueFd src(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, host_path.c_str(), &how, sizeof(how))));
  if (!src) {
    if (errno == ELOOP) {
      return Error(Code::kInvalidArgument, "bind source " + host_path + " has a symlink in its path");
    }
    return Error::FromErrno("open bind source " + host_path);
  }
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) return Error::FromErrno("stat bind source " + host_path);
  // O_PATH|O_NOFOLLOW hands back the link itself when it is the last component.
  if (S_ISLNK(st.st_mode)) return Error(Code::kInvalidArgument, "bind source " + host_path + " is a symlink");

  HostBindTree out;
  out.is_dir = S_ISDIR(st.st_mode);
  const unsigned recursive = out.is_dir ? AT_RECURSIVE : 0;
  out.tree.Reset(static_cast<int>(::syscall(SYS_open_tree, src.get(), "",
                                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
                                                AT_SYMLINK_NOFOLLOW | recursive)));
  if (!out.tree) return Error::FromErrno("open_tree (clone) " + host_path);
  if (read_only) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::syscall(SYS_mount_setattr, out.tree.get(), "", AT_EMPTY_PATH | recursive, &attr, sizeof(attr)) != 0) {
      return Error::FromErrno("make bind of " + host_path + " read-only");
    }
  }
  return out;
}

Result<StagedBind> StagedBind::Attach(HostBindTree tree, const std::string& path) {
  if (!tree.tree) return Error(Code::kInvalidArgument, "no bind tree to stage at " + path);
  if (tree.is_dir) {
    if (::mkdir(path.c_str(), 0700) != 0) return Error::FromErrno("mkdir bind staging " + path);
  } else {
    UniqueFd f(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f) return Error::FromErrno("create bind staging " + path);
  }
  StagedBind staged;
  staged.is_dir_ = tree.is_dir;
  staged.path_ = path;  // from here on the destructor removes the mount point
  if (::syscall(SYS_move_mount, tree.tree.get(), "", AT_FDCWD, path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    Error e = Error::FromErrno("attach bind at " + path);
    staged.Release();
    return e;
  }
  return staged;
}

StagedBind& StagedBind::operator=(StagedBind&& o) noexcept {
  if (this != &o) {
    Release();
    path_ = std::exchange(o.path_, {});
    is_dir_ = o.is_dir_;
  }
  return *this;
}

void StagedBind::Release() {
  if (path_.empty()) return;
  // EINVAL: nothing mounted there (the attach failed).
  if (::umount2(path_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL) {
    spdlog::warn("sandbox: unmount bind staging {}: {}", path_, std::strerror(errno));
  } else if ((is_dir_ ? ::rmdir(path_.c_str()) : ::unlink(path_.c_str())) != 0) {
    spdlog::warn("sandbox: remove bind staging {}: {}", path_, std::strerror(errno));
  }
  path_.clear();
}

}  // namespace specula::sandbox
