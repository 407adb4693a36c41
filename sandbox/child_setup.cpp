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
#include <grp.h>
#include <unistd.h>

#include <cerrno>

#include <linux/openat2.h>

#include <climits>
#include <cstring>

#include "common/child_report.h"
#include "common/safe_fs.h"
#include "sandbox/launcher/launch_plan.h"

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

// What creates or attaches resolves beneath the new root and follows no
// symlink: until the old root is detached it is parked on /proc, so a
// symlink the upper dir holds on the way to a target (an earlier action's
// `ln -s /proc/tmp /var/cache`) would lead a mkdir, a create or an attach
// onto the host's filesystem.
constexpr uint64_t kBeneath = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// Opens the directory holding `target` (absolute, inside the new root) and
// points *leaf at its last component, copied into buf (no allocation here).
// Returns the fd or -errno.
int OpenParent(int root, const char* target, char (&buf)[PATH_MAX], const char** leaf) {
  const size_t n = ::strlen(target);
  if (n < 2 || target[0] != '/') return -EINVAL;
  if (n >= sizeof(buf)) return -ENAMETOOLONG;
  ::memcpy(buf, target, n + 1);
  char* slash = ::strrchr(buf, '/');
  *slash = '\0';
  *leaf = slash + 1;
  const char* rel = buf[0] == '\0' ? "." : buf + 1;
  int fd = RawOpenat2(root, rel, O_PATH | O_DIRECTORY, 0, kBeneath);
  return fd < 0 ? -errno : fd;
}

// Returns 0 or an errno.
int ApplyStep(const MountStep& s, int root) {
  const char* t = s.target.c_str();
  struct stat st {};
  char buf[PATH_MAX];
  const char* leaf = nullptr;
  switch (s.kind) {
    case MountStep::Kind::kMkdir: {
      int dir = OpenParent(root, t, buf, &leaf);
      if (dir < 0) return -dir;
      int err = ::mkdirat(dir, leaf, s.mode) != 0 && errno != EEXIST ? errno : 0;
      ::close(dir);
      return err;
    }
    case MountStep::Kind::kTouch: {
      int dir = OpenParent(root, t, buf, &leaf);
      if (dir < 0) return -dir;
      // O_RDONLY|O_NONBLOCK: a FIFO planted at the target neither blocks
      // the create nor needs a writer.
      int fd = ::openat(dir, leaf, O_CREAT | O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW, s.mode);
      int err = fd < 0 ? errno : 0;
      if (fd >= 0) ::close(fd);
      ::close(dir);
      return err;
    }
    case MountStep::Kind::kSymlink: {
      int dir = OpenParent(root, t, buf, &leaf);
      if (dir < 0) return -dir;
      int err = ::symlinkat(s.source.c_str(), dir, leaf) != 0 && errno != EEXIST ? errno : 0;
      ::close(dir);
      return err;
    }
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
    case MountStep::Kind::kAwaitParent:
      return EINVAL;  // handled by RunInit, which holds the sync fd
    case MountStep::Kind::kAttach: {
      int err = 0;
      int at = t[0] == '/' && t[1] != '\0' ? RawOpenat2(root, t + 1, O_PATH | O_NOFOLLOW, 0, kBeneath) : -1;
      if (at < 0) {
        err = t[0] == '/' ? errno : EINVAL;
      } else if (::syscall(SYS_move_mount, s.fd, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        err = errno;
      }
      if (at >= 0) ::close(at);
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


}  // namespace

// Moves `fd` to a number >= 32, clear of the slots children place fds on.
static int MoveHigh(int fd, int report) {
  int to = ::fcntl(fd, F_DUPFD_CLOEXEC, 32);
  if (to < 0) ChildFail(report, "move fd");
  return to;
}

// Waits for one byte (or EOF) on fd.
static void AwaitByte(int fd, int report, const char* step) {
  char c;
  ssize_t n;
  do {
    n = ::read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ChildFail(report, step);
}

void RunInit(const InitPlan& plan) {
  int report = plan.report_fd;
  if (report <= 2) report = ::fcntl(report, F_DUPFD_CLOEXEC, 3);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ResetSignals(&chld);
  ::umask(0);
  for (int fd : plan.parent_ends) {
    if (fd >= 0) ::close(fd);
  }

  // Cloned into a new user namespace: nothing works until the parent has
  // written its id maps. Then become its root (host ids: the range's base).
  if (plan.user_namespace) {
    AwaitByte(plan.go_fd, report, "wait for id maps");
    ::close(plan.go_fd);
  }
  // Join the cgroups first (still the host's root: v1 checks the writer's
  // euid), then unshare the cgroup namespace so the sandbox sees its own
  // cgroup as the root.
  JoinCgroups(plan.cgroup_fds, report);
  if (::unshare(CLONE_NEWCGROUP) != 0) ChildFail(report, "unshare cgroup ns");

  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    ChildFail(report, "make / rprivate");
  }
  // The sandbox's own proc, mounted before pivot_root: in a user namespace
  // the kernel allows a new proc only while a fully visible one is in the
  // mount namespace (the host's, until the old root goes). pivot_root then
  // parks the old root on top of it at /proc, so nothing is written into the
  // upper dir just to pivot; detaching the old root uncovers it.
  // Still the host's uid 0 here: the runtime's directories above merged are
  // root's and 0700, searchable by their owner only.
  // pivot_root refuses a mount copied from a more privileged namespace
  // (locked); a bind of it made here is ours.
  if (::mount(plan.merged.c_str(), plan.merged.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    ChildFail(report, "bind merged");
  }
  if (::chdir(plan.merged.c_str()) != 0) ChildFail(report, "chdir merged");
  if (::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    ChildFail(report, "mount /proc");
  }
  if (::syscall(SYS_pivot_root, ".", "proc") != 0) ChildFail(report, "pivot_root");
  if (::chdir("/") != 0) ChildFail(report, "chdir /");
  // Inside, everything is made as the namespace's root: what is created on
  // its own mounts must be owned by an id that exists there.
  if (plan.user_namespace) {
    // Raw syscalls: glibc's wrappers broadcast to the parent's other
    // threads, which do not exist in this child, and would wait forever.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) ChildFail(report, "setgroups");
    if (::syscall(SYS_setresgid, 0, 0, 0) != 0) ChildFail(report, "setresgid 0");
    if (::syscall(SYS_setresuid, 0, 0, 0) != 0) ChildFail(report, "setresuid 0");
  }

  // The new root, for the steps that must resolve beneath it (ApplyStep).
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) ChildFail(report, "open the new root");
  for (const auto& s : plan.steps) {
    if (s.kind == MountStep::Kind::kAwaitParent) {
      char go = 'B';
      if (::write(plan.sync_fd, &go, 1) != 1) ChildFail(report, "ask parent for binds");
      ssize_t n;
      do {
        n = ::read(plan.sync_fd, &go, 1);
      } while (n < 0 && errno == EINTR);
      if (n != 1 || go != 'G') ChildFail(report, s.step.c_str(), n < 0 ? errno : EIO);
      continue;
    }
    int err = ApplyStep(s, root);
    if (err != 0) ChildFail(report, s.step.c_str(), err);
  }
  ::close(root);

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
  // and no fd of the runtime may survive: only the ready pipe (fd 3, for the
  // init program) and the report pipe (closed by exec).
  int ready = MoveHigh(plan.ready_fd, report);
  report = MoveHigh(report, report);
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) ChildFail(report, "open /dev/null");
  for (int i = 0; i < 3; ++i) {
    if (::dup2(null_fd, i) < 0) ChildFail(report, "dup2 /dev/null");
  }
  if (::dup2(ready, 3) != 3) ChildFail(report, "dup2 ready pipe");
  if (::dup3(report, 4, O_CLOEXEC) != 4) ChildFail(report, "dup2 report pipe");
  report = 4;
  ::syscall(SYS_close_range, 5U, ~0U, 0U);

  if (::setsid() < 0) ChildFail(report, "setsid");
  ::umask(022);
  DropPrivileges(plan.priv, report);
  // Filtered before it runs anything of its own: the same filter as every
  // action, so init can do nothing an action cannot.
  if (plan.seccomp.len > 0 && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &plan.seccomp) != 0) {
    ChildFail(report, "install seccomp filter");
  }
  char* const argv[] = {const_cast<char*>("specula-init"), nullptr};
  char* const envp[] = {nullptr};
  ::execve(plan.init_path.c_str(), argv, envp);  // success closes the report pipe
  ChildFail(report, "exec init");
}

void ExecLauncher(const LauncherFds& f) {
  const int report = f.report;
  ResetSignals(nullptr);
  // Every source first moves clear of the slots (a source may sit on
  // another's slot), then onto its slot; then everything else is closed:
  // not close-on-exec, closed, so nothing of the runtime is open in the
  // process that enters the sandbox.
  struct Move {
    int from, to;
  };
  Move moves[SPECULA_LAUNCH_FIRST_V1_FD + SPECULA_LAUNCH_MAX_V1_CGROUPS + 1];
  size_t n = 0;
  auto add = [&](int from, int to) {
    if (from >= 0) moves[n++] = Move{from, to};
  };
  add(f.plan, SPECULA_LAUNCH_PLAN_FD);
  add(f.report, SPECULA_LAUNCH_REPORT_FD);
  add(f.pid, SPECULA_LAUNCH_PID_FD);
  add(f.init_pidfd, SPECULA_LAUNCH_INIT_PIDFD);
  add(f.cgroup2, SPECULA_LAUNCH_CGROUP2_FD);
  add(f.stdout_fd, SPECULA_LAUNCH_STDOUT_FD);
  add(f.stderr_fd, SPECULA_LAUNCH_STDERR_FD);
  add(f.listener, SPECULA_LAUNCH_LISTENER_FD);
  int slot = SPECULA_LAUNCH_FIRST_V1_FD;
  for (size_t i = 0; i < f.v1_cgroups.size() && i < SPECULA_LAUNCH_MAX_V1_CGROUPS; ++i) add(f.v1_cgroups[i], slot++);
  const int launcher_slot = slot;
  add(f.launcher, launcher_slot);
  int rep = report;
  for (size_t i = 0; i < n; ++i) {
    int high = ::fcntl(moves[i].from, F_DUPFD_CLOEXEC, 64);
    if (high < 0) ChildFail(rep, "move launcher fd");
    if (moves[i].from == report) rep = high;
    moves[i].from = high;
  }
  for (size_t i = 0; i < n; ++i) {
    if (::dup2(moves[i].from, moves[i].to) != moves[i].to) ChildFail(rep, "place launcher fd");
    if (moves[i].to == SPECULA_LAUNCH_REPORT_FD) rep = SPECULA_LAUNCH_REPORT_FD;
  }
  ::syscall(SYS_close_range, static_cast<unsigned>(launcher_slot + 1), ~0U, 0U);
  if (::fcntl(launcher_slot, F_SETFD, FD_CLOEXEC) != 0) ChildFail(rep, "launcher cloexec");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) ChildFail(rep, "prctl non-dumpable");
  char* const argv[] = {const_cast<char*>("specula-launch"), nullptr};
  char* const envp[] = {nullptr};
  ::syscall(SYS_execveat, launcher_slot, "", argv, envp, AT_EMPTY_PATH);
  ChildFail(rep, "exec launcher");
}

}  // namespace specula::sandbox
