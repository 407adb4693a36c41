// Only async-signal-safe calls below this line: syscalls, no allocation, no
// locks, no logging. See child_setup.h.
#include "sandbox/child_setup.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/child_report.h"

namespace specula::sandbox {
namespace {

// Signal dispositions and mask are inherited from the runtime; a child that
// execs must not inherit e.g. an ignored SIGPIPE.
void ResetSignals(const sigset_t* keep_blocked) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // EINVAL for reserved RT signals is fine
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, keep_blocked ? keep_blocked : &none, nullptr);
}

void JoinCgroups(const std::vector<int>& fds, int report) {
  for (int fd : fds) {
    if (::write(fd, "0", 1) != 1) ChildFail(report, "join cgroup");
  }
}

// Read-only remount of a bind, keeping the mount's other flags (a bind
// remount replaces them all).
int RemountReadOnly(const char* target) {
  struct statfs sfs {};
  if (::statfs(target, &sfs) != 0) return errno;
  unsigned long keep = 0;
  if (sfs.f_flags & ST_NOSUID) keep |= MS_NOSUID;
  if (sfs.f_flags & ST_NODEV) keep |= MS_NODEV;
  if (sfs.f_flags & ST_NOEXEC) keep |= MS_NOEXEC;
  if (sfs.f_flags & ST_NOATIME) keep |= MS_NOATIME;
  if (sfs.f_flags & ST_NODIRATIME) keep |= MS_NODIRATIME;
  if (sfs.f_flags & ST_RELATIME) keep |= MS_RELATIME;
  if (::mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr) != 0) {
    return errno;
  }
  return 0;
}

// Returns 0 or an errno.
int ApplyStep(const MountStep& s) {
  const char* t = s.target.c_str();
  struct stat st {};
  switch (s.kind) {
    case MountStep::Kind::kMkdir:
      if (::mkdir(t, s.mode) != 0 && errno != EEXIST) return errno;
      return 0;
    case MountStep::Kind::kTouch: {
      int fd = ::open(t, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, s.mode);
      if (fd < 0) return errno;
      ::close(fd);
      return 0;
    }
    case MountStep::Kind::kSymlink:
      if (::symlink(s.source.c_str(), t) != 0 && errno != EEXIST) return errno;
      return 0;
    case MountStep::Kind::kMount:
      if (::mount(s.source.c_str(), t, s.fstype.c_str(), s.flags, s.data.c_str()) != 0) {
        return (s.optional && errno == ENOENT) ? 0 : errno;
      }
      return 0;
    case MountStep::Kind::kBind:
      if (::mount(s.source.c_str(), t, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
      return s.read_only ? RemountReadOnly(t) : 0;
    case MountStep::Kind::kReadOnly:
      if (::lstat(t, &st) != 0) return (s.optional && errno == ENOENT) ? 0 : errno;
      if (::mount(t, t, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
      return RemountReadOnly(t);
    case MountStep::Kind::kMask:
      if (::lstat(t, &st) != 0) return (s.optional && errno == ENOENT) ? 0 : errno;
      if (S_ISDIR(st.st_mode)) {
        if (::mount("tmpfs", t, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "mode=000,size=4k") != 0) {
          return errno;
        }
        return 0;
      }
      if (::mount("/dev/null", t, nullptr, MS_BIND, nullptr) != 0) return errno;
      return RemountReadOnly(t);
    case MountStep::Kind::kTmpfsIfDir:
      if (::lstat(t, &st) != 0) return (s.optional && errno == ENOENT) ? 0 : errno;
      if (!S_ISDIR(st.st_mode)) return 0;  // a symlink resolves inside the new root anyway
      if (::mount("tmpfs", t, "tmpfs", s.flags, s.data.c_str()) != 0) return errno;
      return 0;
    case MountStep::Kind::kDetach:
      if (::umount2(t, MNT_DETACH) != 0) return errno;
      return 0;
    case MountStep::Kind::kAttach: {
      // The target's last component is not followed (no MOVE_MOUNT_T_SYMLINKS).
      int err = 0;
      if (::syscall(SYS_move_mount, s.fd, "", AT_FDCWD, t, MOVE_MOUNT_F_EMPTY_PATH) != 0) err = errno;
      ::close(s.fd);  // attached (or failed): the tree no longer needs our reference
      return err;
    }
  }
  return EINVAL;
}

void LoopbackUp(int report) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) ChildFail(report, "socket for lo");
  struct ifreq ifr {};
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) ChildFail(report, "get lo flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) ChildFail(report, "set lo up");
  ::close(s);
}

void SetLimits(const PrivilegePlan& p, int report) {
  struct rlimit cur {};
  if (::getrlimit(RLIMIT_NOFILE, &cur) != 0) ChildFail(report, "getrlimit nofile");
  // Without CAP_SYS_RESOURCE the hard limit can only go down.
  rlim_t n = p.nofile < cur.rlim_max ? p.nofile : cur.rlim_max;
  struct rlimit nofile {n, n};
  if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) ChildFail(report, "setrlimit nofile");
  struct rlimit core {0, 0};
  if (::setrlimit(RLIMIT_CORE, &core) != 0) ChildFail(report, "setrlimit core");
}

// Bounding set from the policy, empty inheritable and ambient sets,
// effective = permitted = bounding set, then no_new_privs.
void DropPrivileges(const PrivilegePlan& p, int report) {
  for (int cap = 0; cap <= p.last_cap; ++cap) {
    if (p.cap_mask & (1ULL << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      ChildFail(report, "drop bounding capability");
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    ChildFail(report, "clear ambient capabilities");
  }
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(p.cap_mask & 0xffffffffU);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(p.cap_mask >> 32);
  if (::syscall(SYS_capset, &hdr, data) != 0) ChildFail(report, "capset");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(report, "no_new_privs");
}

bool SendFd(int sock, int fd) {
  char dummy = 'L';
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  __builtin_memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == 1;
}

}  // namespace

void RunInit(const InitPlan& plan) {
  int report = plan.report_fd;
  if (report <= 2) report = ::fcntl(report, F_DUPFD_CLOEXEC, 3);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ResetSignals(&chld);
  ::umask(0);

  // Join the cgroups first, then unshare the cgroup namespace so the sandbox
  // sees its own cgroup as the root.
  JoinCgroups(plan.cgroup_fds, report);
  if (::unshare(CLONE_NEWCGROUP) != 0) ChildFail(report, "unshare cgroup ns");

  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    ChildFail(report, "make / rprivate");
  }
  // The old root is parked on the new root's /proc (which gets its own proc
  // later), so nothing is written into the upper dir just to pivot.
  if (::chdir(plan.merged.c_str()) != 0) ChildFail(report, "chdir merged");
  if (::syscall(SYS_pivot_root, ".", "proc") != 0) ChildFail(report, "pivot_root");
  if (::chdir("/") != 0) ChildFail(report, "chdir /");

  for (const auto& s : plan.steps) {
    int err = ApplyStep(s);
    if (err != 0) ChildFail(report, s.step.c_str(), err);
  }

  // The reaper goes onto the sandbox's own tmpfs, so that everything pid 1
  // maps is inside the sandbox (CRIU can dump it).
  int prog = ::open(plan.init_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0500);
  if (prog < 0) ChildFail(report, "create init program");
  size_t off = 0;
  while (off < plan.init_program_size) {
    ssize_t n = ::write(prog, plan.init_program + off, plan.init_program_size - off);
    if (n <= 0) ChildFail(report, "write init program");
    off += static_cast<size_t>(n);
  }
  ::close(prog);

  if (::sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
    ChildFail(report, "sethostname");
  }
  if (plan.loopback_up) LoopbackUp(report);
  SetLimits(plan.priv, report);

  // Init's stdio must not point outside the sandbox (CRIU cannot dump that),
  // and no fd of the runtime may survive.
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) ChildFail(report, "open /dev/null");
  for (int i = 0; i < 3; ++i) {
    if (::dup2(null_fd, i) < 0) ChildFail(report, "dup2 /dev/null");
  }
  if (report > 3) ::syscall(SYS_close_range, 3U, static_cast<unsigned>(report - 1), 0U);
  ::syscall(SYS_close_range, static_cast<unsigned>(report + 1), ~0U, 0U);

  if (::setsid() < 0) ChildFail(report, "setsid");
  ::umask(022);
  DropPrivileges(plan.priv, report);
  char* const argv[] = {const_cast<char*>("specula-init"), nullptr};
  char* const envp[] = {nullptr};
  ::execve(plan.init_path.c_str(), argv, envp);  // success closes the report pipe
  ChildFail(report, "exec init");
}

void LaunchAction(const ActionPlan& plan) {
  const int report = plan.report_fd;
  JoinCgroups(plan.cgroup_fds, report);
  // The cgroup namespace comes last (in the action itself): CLONE_INTO_CGROUP
  // checks the source cgroup against the caller's cgroup namespace.
  // CLONE_NEWTIME too: a CRIU-restored init lives in a time namespace of its
  // own, and actions (and the jobs they leave) must share it, or the next
  // dump/restore fails ("Can't restore sub-task in NS (cflags 80)").
  // setns to a time namespace sets the one our children get, like NEWPID.
  if (::setns(plan.init_pidfd,
              CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWTIME) != 0) {
    ChildFail(report, "setns into sandbox");
  }
  // The action becomes the runtime's child (CLONE_PARENT), so the runtime
  // waits for it directly, while it lives in the sandbox's pid namespace
  // and its orphans go to the sandbox's init.
  CloneArgs args{};
  args.flags = CLONE_PARENT | kCloneIntoCgroup;
  args.cgroup = static_cast<uint64_t>(plan.cgroup2_dir);
  long child = ::syscall(SYS_clone3, &args, sizeof(args));
  if (child < 0) ChildFail(report, "clone action");
  if (child > 0) {
    pid_t pid = static_cast<pid_t>(child);
    ssize_t w = ::write(plan.pid_fd, &pid, sizeof(pid));
    (void)w;
    ::_exit(0);
  }

  if (::setns(plan.init_pidfd, CLONE_NEWCGROUP) != 0) ChildFail(report, "setns cgroup ns");
  ResetSignals(nullptr);
  if (::setsid() < 0) ChildFail(report, "setsid");
  int in = ::open(plan.dev_null, O_RDONLY | O_CLOEXEC);
  if (in < 0) ChildFail(report, "open /dev/null");
  if (::dup2(in, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 || ::dup2(plan.stderr_fd, 2) < 0) {
    ChildFail(report, "dup2 stdio");
  }
  if (::chdir("/") != 0) ChildFail(report, "chdir /");
  SetLimits(plan.priv, report);
  DropPrivileges(plan.priv, report);
  // Everything but stdio closes at exec; the report pipe stays usable until then.
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (plan.seccomp.len > 0) {
    unsigned flags = plan.seccomp_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &plan.seccomp);
    if (fd < 0) ChildFail(report, "install seccomp filter");
    if (plan.seccomp_listener) {
      if (!SendFd(plan.listener_sock, static_cast<int>(fd))) ChildFail(report, "send listener");
      ::close(static_cast<int>(fd));
    }
  }
  ::execve(plan.exe, plan.argv.data(), plan.envp.data());
  ChildFail(report, "exec bash");
}

}  // namespace specula::sandbox
