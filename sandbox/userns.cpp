#include "sandbox/userns.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace specula::sandbox {
namespace {

Status WriteFile(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + path);
  ssize_t n = ::write(fd.get(), text.data(), text.size());
  if (n != static_cast<ssize_t>(text.size())) return Error::FromErrno("write " + path);
  return Status::Ok();
}

}  // namespace

Status ValidateIdRange(const IdRange& r) {
  if (r.count == 0) return Error(Code::kInvalidArgument, "user namespace id range is empty");
  if (r.host_base == 0) {
    return Error(Code::kInvalidArgument, "user namespace id range starts at host uid 0")
        .WithHint("a sandbox's root must not be the host's root; pick a base such as 1879048192");
  }
  uint64_t end = static_cast<uint64_t>(r.host_base) + r.count;  // one past the last host id
  if (end > 0xFFFFFFFFULL) {
    return Error(Code::kInvalidArgument, "user namespace id range " + std::to_string(r.host_base) + "+" +
                                             std::to_string(r.count) + " reaches uid 4294967295");
  }
  return Status::Ok();
}

std::string IdMapLine(const IdRange& r) {
  return "0 " + std::to_string(r.host_base) + " " + std::to_string(r.count) + "\n";
}

Status WriteIdMaps(pid_t pid, const IdRange& r) {
  const std::string dir = "/proc/" + std::to_string(pid);
  SPECULA_TRY_CTX(WriteFile(dir + "/uid_map", IdMapLine(r)), "user namespace of " + std::to_string(pid));
  SPECULA_TRY_CTX(WriteFile(dir + "/gid_map", IdMapLine(r)), "user namespace of " + std::to_string(pid));
  return Status::Ok();
}

Result<std::shared_ptr<const MappingUserns>> MappingUserns::Create(const IdRange& range) {
  SPECULA_TRY(ValidateIdRange(range));
  // The child only sleeps until we kill it: its user namespace outlives it
  // through the fd opened below. Not a pipe to wait on: another thread's
  // fork would inherit our write end and the child would never see EOF.
  // It dies with us, too: a daemon killed between the clone and the reap
  // below would otherwise leave it paused forever (seen after a kill -9 in
  // the crash tests). The death signal follows this thread, which waits
  // for the child right here; the getppid check closes the race of a parent
  // gone before prctl.
  const pid_t parent = ::getpid();
  long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(1);
    for (;;) ::pause();
  }
  if (pid < 0) {
    return Error::FromErrno("clone a user namespace")
        .WithHint("user namespaces may be disabled (user.max_user_namespaces); see `specula doctor`");
  }
  auto reap = [&] {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    while (::waitpid(static_cast<pid_t>(pid), nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  Status st = WriteIdMaps(static_cast<pid_t>(pid), range);
  UniqueFd ns;
  if (st.ok()) {
    ns.Reset(::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) st = Error::FromErrno("open the mapping user namespace");
  }
  reap();
  if (!st.ok()) return std::move(st).error();
  return std::shared_ptr<const MappingUserns>(new MappingUserns(std::move(ns), range));
}

Result<UniqueFd> CloneMount(int dir_fd, int userns_fd, bool recursive, const std::string& what) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, dir_fd, "", flags)));
  if (!tree) return Error::FromErrno("clone the mount of " + what);
  if (userns_fd >= 0) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns_fd);
    if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                  sizeof(attr)) != 0) {
      Error e = Error::FromErrno("idmap the mount of " + what);
      if (e.sys_errno() == EINVAL) {
        e.WithHint("its filesystem cannot be idmapped (overlayfs and some network filesystems cannot); "
                   "use a base on ext4, xfs, btrfs or tmpfs, or a policy with [sandbox] user_namespace = false");
      }
      return e;
    }
  }
  return tree;
}

ScopedFsIds::ScopedFsIds(const IdRange& r) {
  old_uid_ = static_cast<uint32_t>(::syscall(SYS_setfsuid, -1));
  old_gid_ = static_cast<uint32_t>(::syscall(SYS_setfsgid, -1));
  ::syscall(SYS_setfsgid, r.host_base);
  ::syscall(SYS_setfsuid, r.host_base);
  changed_ = true;
  if (static_cast<uint32_t>(::syscall(SYS_setfsuid, -1)) != r.host_base ||
      static_cast<uint32_t>(::syscall(SYS_setfsgid, -1)) != r.host_base) {
    status_ = Error(Code::kPermissionDenied, "setfsuid to the sandbox's root id " + std::to_string(r.host_base));
    return;
  }
  // Leaving fsuid 0 drops the filesystem capabilities from the effective
  // set (capabilities(7), "Effect of user ID changes"); take them back.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) {
    status_ = Error::FromErrno("capget");
    return;
  }
  data[0].effective = data[0].permitted;
  data[1].effective = data[1].permitted;
  if (::syscall(SYS_capset, &hdr, data) != 0) status_ = Error::FromErrno("capset");
}

ScopedFsIds::~ScopedFsIds() {
  if (!changed_) return;
  // Back to fsuid 0: the kernel raises the filesystem capabilities again.
  ::syscall(SYS_setfsuid, old_uid_);
  ::syscall(SYS_setfsgid, old_gid_);
}

}  // namespace specula::sandbox
