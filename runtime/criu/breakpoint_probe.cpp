#include "runtime/criu/breakpoint_probe.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/files.h"

namespace specula::criu {
namespace {

// The breakpoint's target. noinline plus an asm barrier so the call and the
// function both survive optimisation and the address is the one executed.
[[gnu::noinline]] void BreakpointTarget() { asm volatile("" ::: "memory"); }

// Waits up to `timeout` for a state change of pid (a ptrace stop or exit).
// Returns false on timeout. Polls, because a tracee's stop does not wake
// poll(2) on a pidfd, and a 1 ms step is well below the probe's budget.
bool WaitWithTimeout(pid_t pid, int* status, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG | __WALL);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    timespec ts{0, 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
}

void KillAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, __WALL) < 0 && errno == EINTR) {
  }
}

std::string BootId() {
  auto id = ReadTextFile("/proc/sys/kernel/random/boot_id");
  if (!id.ok()) return "unknown";
  std::string s = *id;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

BreakpointProbeResult ProbeHardwareBreakpoints(std::chrono::milliseconds timeout, bool arm) {
  BreakpointProbeResult r;
#if !defined(__x86_64__)
  (void)timeout;
  (void)arm;
  r.detail = "not probed: the debug-register probe is x86-64 only";
  return r;
#else
  const auto target = reinterpret_cast<uintptr_t>(&BreakpointTarget);
  pid_t pid = ::fork();
  if (pid < 0) {
    r.detail = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) ::_exit(2);
    ::raise(SIGSTOP);
    BreakpointTarget();
    ::_exit(0);
  }
  int st = 0;
  if (!WaitWithTimeout(pid, &st, timeout) || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP) {
    KillAndReap(pid);
    r.detail = "the traced child did not stop for set-up (PTRACE_TRACEME failed?)";
    return r;
  }
  // DR7: L0 (bit 0) enables DR0; R/W0 = 00 (execute) and LEN0 = 00 (1 byte),
  // the only valid combination for an instruction breakpoint.
  constexpr unsigned long kDr7EnableDr0Exec = 1;
  if (::ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), target) != 0) {
    r.detail = std::string("setting DR0 failed: ") + std::strerror(errno);
    KillAndReap(pid);
    return r;
  }
  if (::ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]),
               arm ? kDr7EnableDr0Exec : 0UL) != 0) {
    r.detail = std::string("setting DR7 failed: ") + std::strerror(errno);
    KillAndReap(pid);
    return r;
  }
  if (::ptrace(PTRACE_CONT, pid, nullptr, nullptr) != 0) {
    r.detail = std::string("PTRACE_CONT failed: ") + std::strerror(errno);
    KillAndReap(pid);
    return r;
  }
  if (!WaitWithTimeout(pid, &st, timeout)) {
    r.detail = "no SIGTRAP within " + std::to_string(timeout.count()) + " ms";
    KillAndReap(pid);
    return r;
  }
  if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) {
    // DR6 bit B0: the trap came from DR0, not from something else.
    errno = 0;
    long dr6 = ::ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user, u_debugreg[6]), nullptr);
    r.fired = errno == 0 && (dr6 & 1) != 0;
    r.detail = r.fired ? "DR0/DR7 execute breakpoint trapped (DR6.B0 set)"
                       : "SIGTRAP, but DR6 does not name DR0 as its cause";
    KillAndReap(pid);
    return r;
  }
  if (WIFEXITED(st)) {
    r.detail = "DR0/DR7 set, but the child ran past the breakpoint (exit " +
               std::to_string(WEXITSTATUS(st)) + ")";
    return r;  // already reaped
  }
  if (WIFSIGNALED(st)) {
    r.detail = "the child died of signal " + std::to_string(WTERMSIG(st));
    return r;
  }
  r.detail = "the child stopped with signal " + std::to_string(WSTOPSIG(st)) + ", not SIGTRAP";
  KillAndReap(pid);
  return r;
#endif
}

Result<bool> ReadBreakpointCache(const std::string& path) {
  auto text = ReadTextFile(path, 4096);
  if (!text.ok()) {
    if (text.error().code() == Code::kNotFound) return Error(Code::kNotFound, "no cache at " + path);
    return std::move(text).error();
  }
  std::string boot, fire;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t nl = text->find('\n', pos);
    std::string line = text->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text->size() : nl + 1;
    if (line.rfind("boot_id=", 0) == 0) boot = line.substr(8);
    if (line.rfind("breakpoints_fire=", 0) == 0) fire = line.substr(17);
  }
  if (boot.empty() || (fire != "0" && fire != "1")) {
    return Error(Code::kDataLoss, "breakpoint cache " + path + ": unrecognised content");
  }
  if (boot != BootId()) return Error(Code::kNotFound, "breakpoint cache " + path + " is from another boot");
  return fire == "1";
}

Status WriteBreakpointCache(const std::string& path, bool fired) {
  return WriteFileAtomic(path, "boot_id=" + BootId() + "\nbreakpoints_fire=" +
                                   (fired ? "1" : "0") + "\n")
      .Context("write breakpoint cache");
}

bool CriuNeedsNoBreakpoints(const std::string& cache_path) {
  auto cached = ReadBreakpointCache(cache_path);
  if (cached.ok()) return !*cached;
  if (cached.error().code() != Code::kNotFound) {
    spdlog::warn("ignoring breakpoint cache: {}", cached.error().ToString());
  }
  BreakpointProbeResult r = ProbeHardwareBreakpoints(std::chrono::milliseconds(1000));
  spdlog::debug("hardware breakpoint probe: {}", r.detail);
  if (Status st = WriteBreakpointCache(cache_path, r.fired); !st.ok()) {
    spdlog::warn("{}", st.ToString());
  }
  return !r.fired;
}

}  // namespace specula::criu
