#include "policies/policy.h"

namespace specula::policy {

Policy DefaultPolicy() {
  Policy p;
  p.name = "default";
  p.description = "Strict: nothing escapes a branch; host-wide system calls wait for promotion.";
  // Kernel tunables and host state are read-only in a branch: a write there
  // cannot be contained in the overlay.
  p.paths = {
      {"/proc/sys", PathMode::kReadOnly, "", Compensation::kRestore, "kernel tunables"},
      {"/sys", PathMode::kReadOnly, "", Compensation::kRestore, "kernel and device state"},
  };
  // Calls whose effect is on the whole host and that the sandbox cannot
  // contain (listed in the order the parser produces: deny, then defer).
  // Clock, swap and module changes are deferred: they happen iff the
  // branch is promoted, exactly as if the command had run for real. Calls
  // that could escape or take the host down are refused outright.
  for (const char* name : {"kexec_load", "kexec_file_load", "reboot", "acct", "open_by_handle_at"}) {
    p.syscalls.push_back({name, SyscallAction::kDeny, EPERM});
  }
  for (const char* name : {"clock_settime", "settimeofday", "clock_adjtime", "adjtimex", "swapon",
                           "swapoff", "init_module", "finit_module", "delete_module"}) {
    p.syscalls.push_back({name, SyscallAction::kDefer, EPERM});
  }
  return p;
}

const char* ToString(PathMode m) {
  switch (m) {
    case PathMode::kSandboxed: return "sandboxed";
    case PathMode::kHidden: return "hidden";
    case PathMode::kReadOnly: return "read-only";
    case PathMode::kLossy: return "lossy";
  }
  return "?";
}
const char* ToString(Compensation c) { return c == Compensation::kRestore ? "restore" : "none"; }
const char* ToString(SyscallAction a) {
  switch (a) {
    case SyscallAction::kAllow: return "allow";
    case SyscallAction::kDeny: return "deny";
    case SyscallAction::kKill: return "kill";
    case SyscallAction::kDefer: return "defer";
  }
  return "?";
}
const char* ToString(NetworkMode m) {
  switch (m) {
    case NetworkMode::kNone: return "none";
    case NetworkMode::kLoopback: return "loopback";
    case NetworkMode::kAllowlist: return "allowlist";
    case NetworkMode::kLossyEgress: return "lossy";
  }
  return "?";
}
const char* ToString(PromoteTarget t) { return t == PromoteTarget::kLayer ? "layer" : "base"; }

}  // namespace specula::policy
