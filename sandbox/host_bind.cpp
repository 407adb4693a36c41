#include "sandbox/host_bind.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "common/child_report.h"
#include "common/safe_fs.h"
#include <cstring>

namespace specula::sandbox {

Result<HostBindTree> CloneHostBind(const std::string& host_path, bool read_only, int userns_fd) {
  if (host_path.empty() || host_path.front() != '/') {
    return Error(Code::kInvalidArgument, "bind source '" + host_path + "' must be absolute");
  }
  auto opened = OpenHostPathNoSymlinks(host_path, O_PATH | O_NOFOLLOW);
  if (!opened.ok()) {
    if (opened.error().sys_errno() == ELOOP) {
      return Error(Code::kInvalidArgument, "bind source " + host_path + " has a symlink in its path");
    }
    return Error(opened.error()).Context("bind source");
  }
  UniqueFd src = std::move(*opened);
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
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (read_only ? MOUNT_ATTR_RDONLY : 0);
  if (::syscall(SYS_mount_setattr, out.tree.get(), "", AT_EMPTY_PATH | recursive, &attr, sizeof(attr)) != 0) {
    return Error::FromErrno("set nosuid,nodev" + std::string(read_only ? ",ro" : "") + " on the bind of " +
                            host_path);
  }
  if (userns_fd >= 0) {
    mount_attr idmap{};
    idmap.attr_set = MOUNT_ATTR_IDMAP;
    idmap.userns_fd = static_cast<uint64_t>(userns_fd);
    if (::syscall(SYS_mount_setattr, out.tree.get(), "", AT_EMPTY_PATH | recursive, &idmap, sizeof(idmap)) != 0) {
      return Error::FromErrno("idmap the bind of " + host_path)
          .WithHint("its filesystem cannot be idmapped; use a policy with [sandbox] user_namespace = false");
    }
  }
  return out;
}

Status AttachInto(pid_t init_pid, const std::vector<BindTarget>& targets) {
  if (targets.empty()) return Status::Ok();
  UniqueFd mntns(::open(("/proc/" + std::to_string(init_pid) + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mntns) return Error::FromErrno("open the mount namespace of sandbox init " + std::to_string(init_pid));
  std::vector<const char*> rel;
  for (const auto& t : targets) {
    if (t.path.size() < 2 || t.path.front() != '/') {
      return Error(Code::kInvalidArgument, "bind target '" + t.path + "' must be absolute");
    }
    rel.push_back(t.path.c_str() + 1);
  }
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  UniqueFd rd(p[0]), wr(p[1]);
  // The helper: single-threaded, so it may enter another mount namespace;
  // async-signal-safe calls only.
  long pid = ::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    if (::setns(mntns.get(), CLONE_NEWNS) != 0) ChildFail(wr.get(), "enter the sandbox's mount namespace");
    int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) ChildFail(wr.get(), "open the sandbox's root");
    for (size_t i = 0; i < targets.size(); ++i) {
      int at = RawOpenat2(root, rel[i], O_PATH | O_NOFOLLOW, 0,
                          RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
      if (at < 0) ChildFail(wr.get(), "resolve bind target");
      if (::syscall(SYS_move_mount, targets[i].tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) !=
          0) {
        ChildFail(wr.get(), "attach bind");
      }
      ::close(at);
    }
    ::_exit(0);
  }
  if (pid < 0) return Error::FromErrno("fork the bind helper");
  wr.Reset();
  Status st = ReadChildReport(rd.get(), "attach binds into sandbox");
  int status = 0;
  while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  return st;
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
