// The policy: what a speculative branch may do. This struct is the contract
// between the policy-file parser (policy_parser.h, TOML -> Policy) and its
// users (sandbox, runtime). Fields may be added; existing names keep their
// meaning. Every field has the strict default of policies/default.toml.
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

namespace specula::policy {

// What a branch sees at a path (and below it).
enum class PathMode {
  kSandboxed,  // copy-on-write in the branch's upper dir (the default for everything)
  kHidden,     // an empty, unwritable directory/file is mounted over it
  kReadOnly,   // visible, writes fail with EROFS
  kLossy,      // bind-mounted through to the host path: writes escape, journaled
};

enum class Compensation {
  kRestore,  // pre-image captured before the first write, written back on discard
  kNone,     // last write wins (the paper's OS-tuning variant)
};

struct PathRule {
  std::string path;  // absolute, normalised, no trailing slash
                     // (lossy only: the last component may be a glob, "sched_*",
                     // expanded on the host when a branch starts)
  PathMode mode = PathMode::kSandboxed;
  std::string tag;                                   // lossy only: required
  Compensation compensation = Compensation::kRestore;  // lossy only
  std::string reason;                                // optional, shown by `policy explain`
  bool operator==(const PathRule&) const = default;
};

enum class SyscallAction {
  kAllow,
  kDeny,   // fails with errno_value
  kKill,   // the calling process is killed
  kDefer,  // blocks (seccomp user notification) until promote; killed on discard
};

struct SyscallRule {
  std::string name;  // as libseccomp names it, e.g. "reboot"
  SyscallAction action = SyscallAction::kDeny;
  int errno_value = EPERM;  // kDeny only
  bool operator==(const SyscallRule&) const = default;
};

enum class NetworkMode {
  kNone,         // no network namespace interfaces at all (not even loopback up)
  kLoopback,     // fresh netns, loopback up (the default)
  kAllowlist,    // loopback plus the listed CIDR:port endpoints
  kLossyEgress,  // egress allowed and journaled with lossy_tag
};

struct NetEndpoint {
  std::string cidr;  // "10.0.0.0/8", "::1/128"
  uint16_t port = 0;  // 0: any port
  bool operator==(const NetEndpoint&) const = default;
};

struct Network {
  NetworkMode mode = NetworkMode::kLoopback;
  std::vector<NetEndpoint> allow;  // kAllowlist
  std::string lossy_tag;           // kLossyEgress
  bool operator==(const Network&) const = default;
};

struct Resources {
  uint64_t memory_bytes = 1ULL << 30;       // cgroup memory limit
  uint32_t pids = 512;                      // cgroup pids limit
  uint32_t cpu_millis = 1000;               // cpu.max quota per period, in 1/1000 CPUs
  uint32_t cpu_weight = 100;                // cgroup v2 cpu.weight (1..10000)
  uint64_t upper_disk_bytes = 4ULL << 30;   // cap on a branch's upper directory
  uint32_t action_timeout_ms = 60000;       // default action timeout
  uint64_t stdout_cap = 1ULL << 20;
  uint64_t stderr_cap = 1ULL << 20;
  uint64_t nofile = 4096;                   // RLIMIT_NOFILE inside the sandbox
  bool operator==(const Resources&) const = default;
};

struct Speculation {
  uint32_t max_branches_per_session = 8;
  uint32_t max_concurrent_branches = 4;
  // Whether a branch whose action read nondeterministic input (network,
  // time, randomness) may be promoted on a hit.
  bool promote_nondeterministic = true;
  // Extra match normalisations applied to both commands before comparing,
  // after trimming: "collapse_whitespace", "strip_trailing_semicolon".
  std::vector<std::string> normalisations;
  bool operator==(const Speculation&) const = default;
};

enum class PromoteTarget { kLayer, kBase };

struct Promotion {
  PromoteTarget target = PromoteTarget::kLayer;
  bool allow_setuid = false;     // keep setuid/setgid bits on files applied to the base
  bool allow_file_caps = false;  // keep security.capability xattrs
  bool allow_xattrs = false;     // keep trusted.* / security.* xattrs (user.* always kept)
  bool allow_devices = false;    // allow device nodes in the upper dir
  bool operator==(const Promotion&) const = default;
};

struct SandboxSettings {
  std::string hostname = "specula";
  // Capability bounding set inside the sandbox (names like "CAP_CHOWN").
  // Empty list: the sandbox's built-in set (see sandbox/capabilities.h).
  std::vector<std::string> capabilities;
  // true (the default): the sandbox has a user namespace of its own, its
  // root is not the host's root (docs/sandbox.md "User namespace"). false:
  // actions run as the host's root, for what only host root can do from
  // inside (lossy /proc/sys knobs); `policy check` warns.
  bool user_namespace = true;
  bool operator==(const SandboxSettings&) const = default;
};

struct Policy {
  std::string name = "default";
  std::string source;  // file it came from, empty for the built-in default
  std::string description;           // free text from the file, shown by `policy explain`
  std::vector<std::string> extends;  // files merged under this one, nearest first
  std::vector<PathRule> paths;
  std::vector<SyscallRule> syscalls;  // on top of the sandbox's fixed baseline
  Network network;
  Resources resources;
  Speculation speculation;
  Promotion promotion;
  SandboxSettings sandbox;
  bool operator==(const Policy&) const = default;
};

// The built-in strict default; policies/default.toml says the same in TOML.
Policy DefaultPolicy();

const char* ToString(PathMode m);
const char* ToString(Compensation c);
const char* ToString(SyscallAction a);
const char* ToString(NetworkMode m);
const char* ToString(PromoteTarget t);

}  // namespace specula::policy
