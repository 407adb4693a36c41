#include "policies/containment.h"

#include <fnmatch.h>

#include <algorithm>

#include "policies/value_parsers.h"

namespace specula::policy {
namespace {

bool HasGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

bool Contains(const std::vector<std::string>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

const std::vector<std::string>& BaselineDeniedSyscalls() {
  static const std::vector<std::string> kList = {
      "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "keyctl",
      "add_key", "request_key", "bpf", "perf_event_open", "kexec_load", "kexec_file_load",
      "init_module", "finit_module", "delete_module", "clock_settime", "settimeofday",
      "adjtimex", "clock_adjtime", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
      "open_by_handle_at", "mount", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
      "open_tree", "mount_setattr",
      // Legacy x86 segments (CVE-2017-17053, CVE-2015-5157); Docker denies it too.
      "modify_ldt",
      // NUMA placement (Docker: CAP_SYS_NICE only); move_pages and
      // migrate_pages reach other processes' pages.
      "set_mempolicy", "mbind", "move_pages", "migrate_pages",
      // Memory neither ptrace nor CRIU can read: a branch holding it could
      // not be checkpointed.
      "memfd_secret",
  };
  return kList;
}

const std::vector<std::string>& BaselineConditionalSyscalls() {
  static const std::vector<std::string> kList = {"clone3", "clone", "unshare", "mknod", "mknodat",
                                                 "ioctl",  "personality"};
  return kList;
}

bool BindCannotReachHost(std::string_view host_path) {
  return host_path == "/proc/sys/kernel/hostname" || host_path == "/proc/sys/kernel/domainname";
}

const std::vector<std::string>& RiskyCapabilities() {
  // Each is a known route from a container to the host or its kernel:
  // mounts and most admin ioctls, reading any process's memory, loading
  // modules, raw I/O ports and devices, routing and firewall changes,
  // open_by_handle_at (the "shocker" escape), device nodes, BPF, time.
  static const std::vector<std::string> kList = {
      "CAP_SYS_ADMIN",       "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_NET_ADMIN",  "CAP_SYS_RAWIO",
      "CAP_DAC_READ_SEARCH", "CAP_MKNOD",      "CAP_SYS_BOOT",   "CAP_BPF",        "CAP_PERFMON",
      "CAP_SYS_TIME",        "CAP_MAC_ADMIN",  "CAP_MAC_OVERRIDE", "CAP_SYSLOG",   "CAP_LINUX_IMMUTABLE",
  };
  return kList;
}

bool LossyPathTouches(std::string_view lossy, std::string_view dir) {
  size_t slash = lossy.rfind('/');
  std::string_view parent = slash == 0 ? std::string_view("/") : lossy.substr(0, slash);
  std::string_view last = lossy.substr(slash + 1);
  if (!HasGlob(last)) return PathIsWithin(dir, lossy) || PathIsWithin(lossy, dir);
  // A glob names entries of `parent`: it touches `dir` if one of them is
  // `dir` or above it (the component of `dir` right below `parent` matches),
  // or if `parent` itself is inside `dir`.
  if (PathIsWithin(parent, dir)) return true;
  if (!PathIsWithin(dir, parent) || dir == parent) return false;
  std::string_view rest = dir.substr(parent == "/" ? 1 : parent.size() + 1);
  std::string component(rest.substr(0, rest.find('/')));
  return ::fnmatch(std::string(last).c_str(), component.c_str(), 0) == 0;
}

Status CheckLossyAvoids(const Policy& policy, std::string_view dir, std::string_view what) {
  for (const PathRule& r : policy.paths) {
    if (r.mode != PathMode::kLossy || !LossyPathTouches(r.path, dir)) continue;
    return Error(Code::kInvalidArgument, "policy " + (policy.source.empty() ? policy.name : policy.source) +
                                             ": lossy path " + QuoteValue(r.path) + " reaches " +
                                             std::string(what) + " " + QuoteValue(dir))
        .WithHint("a branch writing there would write the runtime's own data; remove the rule or narrow it");
  }
  return {};
}

std::vector<std::string> PolicyWarnings(const Policy& policy) {
  std::vector<std::string> out;
  for (const std::string& cap : policy.sandbox.capabilities) {
    if (!Contains(RiskyCapabilities(), cap)) continue;
    out.push_back("[sandbox] capabilities: " + cap +
                  " gives a branch a known route to the host or its kernel; grant it only if an action "
                  "cannot work without it");
  }
  for (const SyscallRule& r : policy.syscalls) {
    if (r.action != SyscallAction::kAllow) continue;
    if (Contains(BaselineDeniedSyscalls(), r.name)) {
      out.push_back("syscalls.allow: \"" + r.name +
                    "\" is denied by the sandbox's fixed baseline; `allow` cannot loosen it and is ignored "
                    "(`kill` or `defer` are the choices for it)");
    } else if (Contains(BaselineConditionalSyscalls(), r.name)) {
      out.push_back("syscalls.allow: \"" + r.name +
                    "\" is restricted by the sandbox's fixed baseline by argument; `allow` does not lift that "
                    "restriction and is ignored");
    }
  }
  return out;
}

}  // namespace specula::policy
