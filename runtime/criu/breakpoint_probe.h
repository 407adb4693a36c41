// Do x86 hardware breakpoints (debug registers) fire here? CRIU arms one on
// the return address of its parasite to catch it leaving the dumped task; in
// VMs that do not virtualise DR0-DR7 the trap never comes and `criu dump`
// hangs (ENVIRONMENT.md). CRIU_FAULT=130 makes CRIU use PTRACE_SYSCALL
// instead, so the probe's answer decides whether the CRIU driver sets it.
// `specula doctor` reports it (check criu.hw_breakpoints) and refreshes the
// cache the driver reads.
#pragma once

#include <chrono>
#include <string>

#include "common/error.h"

namespace specula::criu {

// Where the probe's answer is cached (see CriuNeedsNoBreakpoints).
inline constexpr const char* kBreakpointCachePath = "/run/specula/hw-breakpoints";

struct BreakpointProbeResult {
  bool fired = false;   // the traced child stopped with SIGTRAP at the breakpoint
  std::string detail;   // one line: what happened
};

// A forked child PTRACE_TRACEMEs and stops; we set DR0 to the address of a
// function it is about to call and enable it in DR7 (PTRACE_POKEUSER into
// struct user's u_debugreg), then continue it. SIGTRAP within `timeout`:
// breakpoints work. The child running past the function (it exits), setting
// DR0/DR7 failing, or nothing within the timeout: they do not. Never blocks
// longer than about 2 x timeout; the child is always killed and reaped.
// A SIGTRAP only counts if DR6 says DR0 caused it.
// arm = false is a control run: DR0 is set but DR7 left disabled, so the
// child must run past (tests use it to show the probe tells the two apart).
BreakpointProbeResult ProbeHardwareBreakpoints(std::chrono::milliseconds timeout,
                                               bool arm = true);

// The probe result cached in a file, so the CRIU driver does not re-probe on
// every call. Content: "boot_id=<id>\nbreakpoints_fire=<0|1>\n"; an entry
// for another boot (/proc/sys/kernel/random/boot_id) is stale, which also
// covers a new kernel or a move to other hardware across a reboot. Default
// path: kBreakpointCachePath.

// The cached answer, or kNotFound if the file is missing or stale,
// kDataLoss if it is unreadable garbage.
Result<bool> ReadBreakpointCache(const std::string& path);
Status WriteBreakpointCache(const std::string& path, bool fired);

// Whether CRIU must run with CRIU_FAULT=130 (no hardware breakpoints) here.
// Reads the cache written by the doctor or by an earlier call; on a miss (no
// file, or written in another boot) runs the probe (at most ~1 s) and writes
// the cache. If the cache cannot be written the answer is still right, only
// not cached. Errs on the safe side: if the probe cannot tell, the answer is
// true (CRIU_FAULT=130 always works, it is only slower).
bool CriuNeedsNoBreakpoints(const std::string& cache_path = kBreakpointCachePath);

}  // namespace specula::criu
