// `specula policy explain`: the policy in plain words, written for the
// operator deciding whether to let an agent speculate under it. Says what a
// branch may do, what it may not, and what escapes the sandbox (lossy).
#include <cstring>
#include <iterator>
#include <map>
#include <sstream>

#include "policies/policy_parser.h"

namespace specula::policy {
namespace {

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  std::ostringstream out;
  if (u == 0 || v == static_cast<double>(static_cast<uint64_t>(v))) {
    out << static_cast<uint64_t>(v) << " " << kUnits[u];
  } else {
    out.precision(3);
    out << v << " " << kUnits[u];
  }
  return out.str();
}

std::string FormatDuration(uint64_t ms) {
  // The largest unit that reads as a whole number of at least 2 ("60s", not "1m").
  if (ms % 3600000 == 0 && ms >= 2 * 3600000) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0 && ms >= 2 * 60000) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string FormatCpus(uint32_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000) + (millis == 1000 ? " CPU" : " CPUs");
  std::ostringstream out;
  out << static_cast<double>(millis) / 1000.0 << " CPUs";
  return out.str();
}

void PathSection(std::ostringstream& out, const Policy& p, PathMode mode, const char* heading) {
  bool any = false;
  for (const PathRule& r : p.paths) {
    if (r.mode != mode) continue;
    if (!any) out << "  " << heading << "\n";
    any = true;
    out << "    " << r.path;
    if (!r.reason.empty()) out << "  (" << r.reason << ")";
    out << "\n";
  }
}

std::string ErrnoName(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : std::to_string(e);
}

}  // namespace

std::string ExplainPolicy(const Policy& p) {
  std::ostringstream out;
  out << "Policy \"" << p.name << "\"";
  if (!p.source.empty()) out << " from " << p.source;
  out << "\n";
  for (const std::string& e : p.extends) out << "  extends " << e << "\n";
  if (!p.description.empty()) out << "  " << p.description << "\n";

  out << "\nFiles\n"
      << "  Every write a branch makes is copy-on-write in the branch's own layer: it\n"
      << "  reaches the host only if the branch is promoted, and vanishes if discarded.\n";
  PathSection(out, p, PathMode::kHidden, "Hidden (the branch sees an empty, unwritable placeholder):");
  PathSection(out, p, PathMode::kReadOnly, "Read-only (visible; writes fail with EROFS):");
  PathSection(out, p, PathMode::kSandboxed, "Sandboxed explicitly (copy-on-write, overriding a parent rule):");
  bool lossy = false;
  for (const PathRule& r : p.paths) {
    if (r.mode != PathMode::kLossy) continue;
    if (!lossy) {
      out << "  LOSSY: writes go straight to the host, before any promote, and are journaled:\n";
    }
    lossy = true;
    out << "    " << r.path << "  [tag " << r.tag << "]";
    if (!r.reason.empty()) out << "  (" << r.reason << ")";
    out << "\n      "
        << (r.compensation == Compensation::kRestore
                ? "restore: pre-image saved first, written back if the branch is discarded"
                : "none: not undone if the branch is discarded (last write wins)")
        << "\n";
  }
  if (!lossy) out << "  No path is lossy: nothing a branch writes reaches the host before promotion.\n";

  out << "\nSystem calls (on top of the sandbox's fixed baseline)\n";
  if (p.syscalls.empty()) out << "  No extra rules.\n";
  std::map<std::string, std::vector<std::string>> groups;  // heading -> names, sorted headings
  for (const SyscallRule& r : p.syscalls) {
    std::string heading;
    switch (r.action) {
      case SyscallAction::kDefer:
        heading = "Deferred: the call waits until the branch is promoted, and the branch is killed if discarded:";
        break;
      case SyscallAction::kDeny: heading = "Denied, failing with " + ErrnoName(r.errno_value) + ":"; break;
      case SyscallAction::kKill: heading = "Fatal: the calling process is killed:"; break;
      case SyscallAction::kAllow: heading = "Allowed explicitly:"; break;
    }
    groups[heading].push_back(r.name);
  }
  for (const auto& [heading, names] : groups) {
    out << "  " << heading << "\n    ";
    size_t col = 4;
    for (size_t i = 0; i < names.size(); ++i) {
      if (col + names[i].size() > 76) {
        out << "\n    ";
        col = 4;
      }
      out << names[i] << (i + 1 < names.size() ? "," : "");
      if (i + 1 < names.size() && col + names[i].size() + 2 + names[i + 1].size() <= 76) out << " ";
      col += names[i].size() + 2;
    }
    out << "\n";
  }

  out << "\nNetwork\n";
  switch (p.network.mode) {
    case NetworkMode::kNone:
      out << "  None: the branch has no network interfaces, not even loopback.\n";
      break;
    case NetworkMode::kLoopback:
      out << "  Loopback only, in the branch's own network namespace; no egress.\n";
      break;
    case NetworkMode::kAllowlist:
      out << "  Loopback, plus connections to these endpoints only (they happen before\n"
          << "  promotion and cannot be undone):\n";
      for (const NetEndpoint& e : p.network.allow) {
        out << "    " << e.cidr << (e.port == 0 ? " any port" : " port " + std::to_string(e.port)) << "\n";
      }
      break;
    case NetworkMode::kLossyEgress:
      out << "  LOSSY: any egress is allowed before promotion and journaled under tag \""
          << p.network.lossy_tag << "\"; it cannot be undone.\n";
      break;
  }

  const Resources& r = p.resources;
  out << "\nResources per branch\n"
      << "  memory " << FormatSize(r.memory_bytes) << ", " << r.pids << " processes, "
      << FormatCpus(r.cpu_millis) << " (weight " << r.cpu_weight << "), " << r.nofile
      << " open files,\n"
      << "  " << FormatSize(r.upper_disk_bytes) << " of changed files in its layer.\n"
      << "  An action is killed after " << FormatDuration(r.action_timeout_ms)
      << "; output kept: stdout " << FormatSize(r.stdout_cap) << ", stderr "
      << FormatSize(r.stderr_cap) << ".\n";

  const Speculation& s = p.speculation;
  out << "\nSpeculation\n"
      << "  Up to " << s.max_branches_per_session << " branches per session, "
      << s.max_concurrent_branches << " running at once.\n"
      << (s.promote_nondeterministic
              ? "  A branch that read nondeterministic input (network, time, randomness) may\n"
                "  be promoted on a hit; it is flagged so the caller can refuse.\n"
              : "  A branch that read nondeterministic input (network, time, randomness) is\n"
                "  never promoted; the command runs again for real instead.\n")
      << "  Commands match byte for byte after trimming";
  for (const std::string& n : s.normalisations) out << ", " << n;
  out << ".\n";

  const Promotion& pr = p.promotion;
  out << "\nPromotion\n"
      << (pr.target == PromoteTarget::kLayer
              ? "  A promoted branch becomes a new sealed layer over the base; the base is untouched.\n"
              : "  A promoted branch is applied to the base itself (the real host); pre-images\n"
                "  are kept so a rollback can undo it.\n")
      << "  Carried by a promote: setuid/setgid bits " << (pr.allow_setuid ? "yes" : "no (cleared)")
      << ", file capabilities " << (pr.allow_file_caps ? "yes" : "no (dropped)")
      << ",\n  trusted/security xattrs " << (pr.allow_xattrs ? "yes" : "no (user.* only)")
      << ", device nodes " << (pr.allow_devices ? "yes" : "no (promote refuses them)") << ".\n";

  out << "\nSandbox\n"
      << (p.sandbox.user_namespace
              ? "  Own user namespace: root inside is host uid 1879048192 (by default), files keep their owners.\n"
              : "  NO user namespace: actions run as the host's root (only capabilities and seccomp contain them).\n")
      << "  hostname \"" << p.sandbox.hostname << "\", capabilities: ";
  if (p.sandbox.capabilities.empty()) {
    out << "the sandbox's built-in set.\n";
  } else {
    for (size_t i = 0; i < p.sandbox.capabilities.size(); ++i) {
      out << (i ? ", " : "") << p.sandbox.capabilities[i];
    }
    out << ".\n";
  }
  std::vector<std::string> notes = PolicyNotes(p);
  if (!notes.empty()) out << "\nNotes\n";
  for (const std::string& n : notes) out << "  " << n << "\n";
  return out.str();
}

std::vector<std::string> PolicyNotes(const Policy& p) {
  std::vector<std::string> notes;
  const char* mode = p.network.mode == NetworkMode::kAllowlist    ? "allowlist"
                     : p.network.mode == NetworkMode::kLossyEgress ? "lossy"
                                                                   : nullptr;
  if (mode != nullptr) {
    // How the traffic really leaves, which decides what "reachable" means.
    notes.push_back(std::string("network.mode = \"") + mode +
                    "\": branches reach out through slirp4netns (user-mode networking, from the host's own "
                    "addresses; without it, loopback only: see `specula doctor` net.uplink); the host's loopback "
                    "is not reachable, and name lookups work only if the branch's resolv.conf names a resolver " +
                    (p.network.mode == NetworkMode::kAllowlist ? "the allowlist permits" : "it can reach"));
  }
  if (!p.sandbox.user_namespace) {
    notes.push_back(
        "[sandbox] user_namespace = false: root inside a branch is the host's root (capabilities, seccomp "
        "and mounts still confine it, but a kernel bug or a missed path reaches the host as root); keep it "
        "only where host root inside is needed, such as lossy writes under /proc/sys");
  }
  return notes;
}

}  // namespace specula::policy
