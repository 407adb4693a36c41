#include "runtime/doctor/kernel_probes.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/child_report.h"
#include "runtime/doctor/child_probe.h"

namespace specula::doctor {
namespace {

// errno for "the call succeeded but did not do what it must": the probe's own
// verdict, not a kernel error.
constexpr int kWrongResult = EPROTO;
// What the user-notify probe's supervisor answers: the grandchild must see it.
constexpr long kNotifyAnswer = 4242;

// Waits for a grandchild; a failed one has already written its own report,
// so the child only has to exit non-zero.
void WaitGrandchildOrExit(pid_t gc) {
  int st = 0;
  while (::waitpid(gc, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ::_exit(1);
}

// Makes the child's (already unshared) mount namespace private, so nothing
// the probe mounts propagates back to the host.
void MakeMountsPrivate(int fd) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    ChildFail(fd, "mount --make-rprivate /");
  }
}

void NamespaceChild(int fd, const void* arg) {
  auto kind = *static_cast<const NamespaceKind*>(arg);
  switch (kind) {
    case NamespaceKind::kPid: {
      if (::unshare(CLONE_NEWPID) != 0) ChildFail(fd, "unshare(CLONE_NEWPID)");
      pid_t gc = ::fork();
      if (gc < 0) ChildFail(fd, "fork into the pid namespace");
      if (gc == 0) {
        if (::getpid() != 1) ChildFail(fd, "first process is not pid 1", kWrongResult);
        ::_exit(0);
      }
      WaitGrandchildOrExit(gc);
      return;
    }
    case NamespaceKind::kMount:
      if (::unshare(CLONE_NEWNS) != 0) ChildFail(fd, "unshare(CLONE_NEWNS)");
      MakeMountsPrivate(fd);
      return;
    case NamespaceKind::kUts: {
      if (::unshare(CLONE_NEWUTS) != 0) ChildFail(fd, "unshare(CLONE_NEWUTS)");
      static constexpr char kName[] = "specula-doctor";
      if (::sethostname(kName, sizeof(kName) - 1) != 0) ChildFail(fd, "sethostname");
      return;
    }
    case NamespaceKind::kIpc:
      if (::unshare(CLONE_NEWIPC) != 0) ChildFail(fd, "unshare(CLONE_NEWIPC)");
      return;
    case NamespaceKind::kNet: {
      if (::unshare(CLONE_NEWNET) != 0) ChildFail(fd, "unshare(CLONE_NEWNET)");
      // Sandboxes keep loopback: it must come up in the new namespace.
      int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s < 0) ChildFail(fd, "socket in the net namespace");
      ifreq ifr{};
      std::memcpy(ifr.ifr_name, "lo", 3);
      if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) ChildFail(fd, "SIOCGIFFLAGS lo");
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) ChildFail(fd, "bring lo up");
      return;
    }
    case NamespaceKind::kCgroup:
      if (::unshare(CLONE_NEWCGROUP) != 0) ChildFail(fd, "unshare(CLONE_NEWCGROUP)");
      return;
  }
}

// A fresh empty dir under a parent, removed on destruction. Probes mount only
// inside their child's private namespace, so it is empty again by then.
class ScratchDir {
 public:
  static Result<ScratchDir> Create(const std::string& parent) {
    std::string tmpl = parent + "/specula-doctor-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return Error::FromErrno("mkdtemp " + tmpl);
    return ScratchDir(std::move(tmpl));
  }
  ScratchDir(ScratchDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  ScratchDir& operator=(ScratchDir&&) = delete;
  ScratchDir(const ScratchDir&) = delete;
  ~ScratchDir() {
    if (path_.empty()) return;
    std::error_code ec;  // best effort: a leftover empty temp dir is harmless
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

// Every path the overlay child touches, built by the parent (the child may
// not allocate).
struct OverlayPaths {
  std::string base, lower, upper, work, merged, lower_file, merged_file, merged_new,
      upper_new, options;
};

void CreateFile(int fd, const char* path, const char* step) {
  int f = ::open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (f < 0) ChildFail(fd, step);
  if (::write(f, "x", 1) != 1) ChildFail(fd, step);
  ::close(f);
}

void OverlayChild(int fd, const void* arg) {
  const auto& p = *static_cast<const OverlayPaths*>(arg);
  if (::unshare(CLONE_NEWNS) != 0) ChildFail(fd, "unshare(CLONE_NEWNS)");
  MakeMountsPrivate(fd);
  // On a tmpfs: the upper dir must not itself be on an overlay, and nothing
  // is left on the host's disk.
  if (::mount("tmpfs", p.base.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    ChildFail(fd, "mount tmpfs for the overlay dirs");
  }
  for (const std::string* d : {&p.lower, &p.upper, &p.work, &p.merged}) {
    if (::mkdir(d->c_str(), 0700) != 0) ChildFail(fd, "mkdir overlay dir");
  }
  CreateFile(fd, p.lower_file.c_str(), "create lower file");
  if (::mount("overlay", p.merged.c_str(), "overlay", 0, p.options.c_str()) != 0) {
    ChildFail(fd, "mount overlay");
  }
  if (::access(p.merged_file.c_str(), F_OK) != 0) ChildFail(fd, "lower file not visible in merged");
  CreateFile(fd, p.merged_new.c_str(), "write through the overlay");
  if (::access(p.upper_new.c_str(), F_OK) != 0) {
    ChildFail(fd, "write did not land in upper", kWrongResult);
  }
}

struct PivotPaths {
  std::string new_root, put_old;
};

void PivotRootChild(int fd, const void* arg) {
  const auto& p = *static_cast<const PivotPaths*>(arg);
  if (::unshare(CLONE_NEWNS) != 0) ChildFail(fd, "unshare(CLONE_NEWNS)");
  MakeMountsPrivate(fd);
  // pivot_root wants new_root to be a mount point: a tmpfs is one.
  if (::mount("tmpfs", p.new_root.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    ChildFail(fd, "mount tmpfs as the new root");
  }
  if (::mkdir(p.put_old.c_str(), 0700) != 0) ChildFail(fd, "mkdir put_old");
  if (::syscall(SYS_pivot_root, p.new_root.c_str(), p.put_old.c_str()) != 0) {
    ChildFail(fd, "pivot_root");
  }
  if (::chdir("/") != 0) ChildFail(fd, "chdir / after pivot_root");
  if (::umount2("/.old", MNT_DETACH) != 0) ChildFail(fd, "umount2 the old root");
  // The new root is an empty tmpfs: the host's /proc must be gone.
  if (::access("/proc", F_OK) == 0) ChildFail(fd, "old root still visible", kWrongResult);
}

constexpr sock_filter Stmt(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }
constexpr sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "specula doctor: add this architecture's AUDIT_ARCH"
#endif

// A filter that returns `action` for getppid(2) and allows everything else
// (other architectures' syscalls included: this filter only has to prove the
// mechanism).
struct GetppidFilter {
  std::array<sock_filter, 6> insns;
  sock_fprog prog;
  explicit GetppidFilter(uint32_t action)
      : insns{{
            Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
            Jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 0, 3),
            Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            Jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
            Stmt(BPF_RET | BPF_K, action),
            Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        }},
        prog{static_cast<unsigned short>(insns.size()), insns.data()} {}
  GetppidFilter(const GetppidFilter&) = delete;  // prog points into insns
  GetppidFilter& operator=(const GetppidFilter&) = delete;
};

void SeccompFilterChild(int fd, const void* arg) {
  const auto& f = *static_cast<const GetppidFilter*>(arg);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(fd, "PR_SET_NO_NEW_PRIVS");
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &f.prog) != 0) {
    ChildFail(fd, "seccomp(SET_MODE_FILTER)");
  }
  errno = 0;
  long r = ::syscall(SYS_getppid);
  if (r != -1 || errno != EXDEV) ChildFail(fd, "filtered getppid did not fail", kWrongResult);
}

void SeccompNotifyChild(int fd, const void* arg) {
  const auto& f = *static_cast<const GetppidFilter*>(arg);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(fd, "PR_SET_NO_NEW_PRIVS");
  long listener = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER, &f.prog);
  if (listener < 0) ChildFail(fd, "seccomp(NEW_LISTENER)");
  int lfd = static_cast<int>(listener);
  pid_t gc = ::fork();
  if (gc < 0) ChildFail(fd, "fork the notified process");
  if (gc == 0) {
    // Blocks in the kernel until the supervisor (our parent) answers.
    long r = ::syscall(SYS_getppid);
    if (r != kNotifyAnswer) ChildFail(fd, "notified syscall got no answer", kWrongResult);
    ::_exit(0);
  }
  pollfd pfd{lfd, POLLIN, 0};
  if (::poll(&pfd, 1, 1000) != 1) ChildFail(fd, "no notification on the listener", ETIMEDOUT);
  seccomp_notif req{};  // must be zeroed: the kernel checks
  if (::ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) ChildFail(fd, "SECCOMP_IOCTL_NOTIF_RECV");
  if (req.data.nr != __NR_getppid) ChildFail(fd, "notification for the wrong syscall", kWrongResult);
  seccomp_notif_resp resp{};
  resp.id = req.id;
  resp.val = kNotifyAnswer;
  if (::ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0) ChildFail(fd, "SECCOMP_IOCTL_NOTIF_SEND");
  WaitGrandchildOrExit(gc);
}

}  // namespace

const char* NamespaceName(NamespaceKind kind) {
  switch (kind) {
    case NamespaceKind::kPid: return "pid";
    case NamespaceKind::kMount: return "mount";
    case NamespaceKind::kUts: return "uts";
    case NamespaceKind::kIpc: return "ipc";
    case NamespaceKind::kNet: return "net";
    case NamespaceKind::kCgroup: return "cgroup";
  }
  return "?";
}

Status ProbeNamespace(NamespaceKind kind, std::chrono::milliseconds timeout) {
  std::string what = std::string(NamespaceName(kind)) + " namespace";
  return RunInChild(what.c_str(), NamespaceChild, &kind, timeout);
}

Status ProbeOverlay(const std::string& scratch_parent, std::chrono::milliseconds timeout) {
  auto made = ScratchDir::Create(scratch_parent);
  if (!made.ok()) return std::move(made).error().Context("overlay probe");
  const ScratchDir& dir = *made;
  OverlayPaths p;
  p.base = dir.path();
  p.lower = p.base + "/lower";
  p.upper = p.base + "/upper";
  p.work = p.base + "/work";
  p.merged = p.base + "/merged";
  p.lower_file = p.lower + "/f";
  p.merged_file = p.merged + "/f";
  p.merged_new = p.merged + "/g";
  p.upper_new = p.upper + "/g";
  p.options = "lowerdir=" + p.lower + ",upperdir=" + p.upper + ",workdir=" + p.work;
  return RunInChild("overlayfs", OverlayChild, &p, timeout);
}

Status ProbePivotRoot(const std::string& scratch_parent, std::chrono::milliseconds timeout) {
  auto made = ScratchDir::Create(scratch_parent);
  if (!made.ok()) return std::move(made).error().Context("pivot_root probe");
  const ScratchDir& dir = *made;
  PivotPaths p{dir.path(), dir.path() + "/.old"};
  return RunInChild("pivot_root", PivotRootChild, &p, timeout);
}

Status ProbeSeccompFilter(std::chrono::milliseconds timeout) {
  GetppidFilter filter(SECCOMP_RET_ERRNO | EXDEV);
  return RunInChild("seccomp filter", SeccompFilterChild, &filter, timeout);
}

Status ProbeSeccompUserNotif(std::chrono::milliseconds timeout) {
  GetppidFilter filter(SECCOMP_RET_USER_NOTIF);
  return RunInChild("seccomp user notification", SeccompNotifyChild, &filter, timeout);
}

}  // namespace specula::doctor
