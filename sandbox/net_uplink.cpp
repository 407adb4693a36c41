#include "sandbox/net_uplink.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace specula::sandbox {
namespace {

constexpr const char* kSlirp = "/usr/bin/slirp4netns";
constexpr int kReadyTimeoutMs = 10000;

}  // namespace

NetUplink::NetUplink(NetUplink&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), exit_w_(std::move(o.exit_w_)) {}

NetUplink& NetUplink::operator=(NetUplink&& o) noexcept {
  if (this != &o) {
    Stop();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    exit_w_ = std::move(o.exit_w_);
  }
  return *this;
}

Result<NetUplink> NetUplink::Start(pid_t pid) {
  if (pid <= 0) return Error(Code::kInvalidArgument, "net uplink: bad pid " + std::to_string(pid));
  if (::access(kSlirp, X_OK) != 0) {
    return Error(Code::kUnavailable, std::string("net uplink: ") + kSlirp + " is not installed")
        .WithHint("install slirp4netns (scripts/setup.sh does), or use network mode \"loopback\"");
  }
  int ready[2], exit_pipe[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return Error::FromErrno("net uplink: pipe2");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  if (::pipe2(exit_pipe, O_CLOEXEC) != 0) return Error::FromErrno("net uplink: pipe2");
  UniqueFd exit_r(exit_pipe[0]), exit_w(exit_pipe[1]);
  // Everything the child needs, built before fork: it may not allocate.
  std::vector<std::string> args = {kSlirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                                   "--ready-fd=3", "--exit-fd=4", std::to_string(pid), "tap0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rfd = ready_w.get(), efd = exit_r.get();
  pid_t child = ::fork();
  if (child < 0) return Error::FromErrno("net uplink: fork");
  if (child == 0) {
    // fds 3 and 4 for slirp4netns; stdio to /dev/null (it is chatty).
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(devnull, 1) < 0 || ::dup2(devnull, 2) < 0) _exit(126);
    // dup2 onto 3/4 in an order that cannot clobber the other source.
    int r = ::fcntl(rfd, F_DUPFD_CLOEXEC, 10), e = ::fcntl(efd, F_DUPFD_CLOEXEC, 10);
    if (r < 0 || e < 0 || ::dup2(r, 3) < 0 || ::dup2(e, 4) < 0) _exit(126);
    ::syscall(SYS_close_range, 5U, ~0U, 0U);
    ::setpgid(0, 0);
    ::execv(kSlirp, argv.data());
    _exit(127);
  }
  NetUplink up;
  up.pid_ = child;
  up.pidfd_.Reset(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
  up.exit_w_ = std::move(exit_w);
  ready_w.Reset();
  exit_r.Reset();
  // slirp4netns writes "1" to the ready fd once tap0 is up and configured.
  pollfd p{ready_r.get(), POLLIN, 0};
  int n = ::poll(&p, 1, kReadyTimeoutMs);
  char c = 0;
  if (n == 1 && ::read(ready_r.get(), &c, 1) == 1 && c == '1') return up;
  up.Stop();
  return Error(Code::kUnavailable, n == 0 ? "net uplink: slirp4netns not ready within 10 s"
                                          : "net uplink: slirp4netns exited before tap0 was configured")
      .WithHint("run `slirp4netns --configure <pid> tap0` by hand to see why");
}

void NetUplink::Stop() {
  if (pid_ <= 0) return;
  exit_w_.Reset();  // asks it to exit; the kill makes sure
  if (pidfd_) {
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  } else {
    ::kill(pid_, SIGKILL);
  }
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pidfd_.Reset();
  pid_ = -1;
}

}  // namespace specula::sandbox
