#include "sandbox/sandbox_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/files.h"
#include "common/unique_fd.h"
#include "sandbox/cgroup.h"

namespace specula::sandbox {

std::string InstanceCgroupParent(const std::string& state_dir) {
  uint32_t h = 2166136261u;  // FNV-1a: short, stable, no dependency
  for (unsigned char c : state_dir) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "i-%08x", h);
  return std::string("specula/") + buf;
}

Result<pid_t> StartSandboxWatch(const std::string& cgroup_parent) {
  SPECULA_ASSIGN_OR_RETURN(CgroupLayout layout, DetectCgroupLayout());
  const std::string dir = layout.v2_root + "/" + cgroup_parent;
  SPECULA_TRY_CTX(MakeDirs(dir, 0755), "sandbox watch");
  UniqueFd kill_fd(::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
  if (!kill_fd) {
    return Error::FromErrno("open " + dir + "/cgroup.kill")
        .WithHint("cgroup.kill needs Linux 5.14 or later (specula doctor)");
  }
  UniqueFd daemon(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
  if (!daemon) return Error::FromErrno("pidfd_open of the daemon");
  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno("fork sandbox watch");
  if (pid == 0) {
    // The watch: no allocation, no locks. Its own session so a terminal's
    // ^C for the daemon does not also end the watch; shutdown signals stay
    // blocked as in the daemon. Nothing but its two fds stays open.
    ::setsid();
    ::prctl(PR_SET_NAME, "speculad-watch", 0, 0, 0);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const int lo = daemon.get() < kill_fd.get() ? daemon.get() : kill_fd.get();
    const int hi = daemon.get() < kill_fd.get() ? kill_fd.get() : daemon.get();
    if (lo > 3) ::close_range(3, lo - 1, 0);
    if (hi > lo + 1) ::close_range(lo + 1, hi - 1, 0);
    ::close_range(hi + 1, ~0U, 0);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
    pollfd p{daemon.get(), POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    (void)!::write(kill_fd.get(), "1", 1);
    ::_exit(0);
  }
  return pid;
}

}  // namespace specula::sandbox
