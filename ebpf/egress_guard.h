// Egress enforcement for one branch: ebpf/egress.bpf.c's cgroup/connect4,
// connect6, sendmsg4 and sendmsg6 programs attached (as bpf_links) to the
// branch's cgroup2 directory, applying policy::Network:
//   kNone, kLoopback  only loopback destinations; everything else EPERM
//   kAllowlist        loopback + the listed CIDR:port endpoints
//   kLossyEgress      everything allowed, non-loopback destinations counted
// The hooks run before routing, so a refused packet never leaves. They
// complement the branch's network namespace (which has no route out unless
// the runtime gives it one). Detached when the guard is destroyed.
//
// The programs are loaded once (EgressPrograms, shared by every branch like
// the effect tracer): loading and verifying them cost ~48 ms, which every
// branch fork used to pay. A branch's guard only writes its config into the
// shared maps (keyed by its cgroup2 id) and links the loaded programs to its
// directory; detaching unlinks and deletes those entries.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"

namespace specula::ebpf {

// One allowlist entry in the kernel's form: address as IPv6 (IPv4 mapped to
// ::ffff:a.b.c.d), prefix length in IPv6 bits, port (0 = any).
struct EgressRule {
  std::array<uint8_t, 16> addr{};
  uint32_t prefix_bits = 0;  // 0..128
  uint16_t port = 0;
};
// Parses "10.0.0.0/8", "192.168.1.5" (a /32), "fd00::/8", "::1" with the
// endpoint's port. kInvalidArgument on anything else (host bits set are
// cleared, as `ip route` does).
Result<EgressRule> ParseEgressRule(const policy::NetEndpoint& endpoint);

struct EgressCounts {
  uint64_t denied = 0;   // connect/sendmsg refused with EPERM
  uint64_t allowed = 0;  // non-loopback destinations allowed by the allowlist
  uint64_t lossy = 0;    // non-loopback destinations allowed under kLossyEgress
};

// The loaded programs and their shared maps. Thread-safe; held by
// std::shared_ptr by the owner (Instrumentation) and by every guard attached
// through it, so it stays loaded until the last guard is gone.
class EgressPrograms {
 public:
  // Probes the kernel, then loads and verifies the programs. kUnavailable if
  // the kernel refuses cgroup sock_addr programs.
  static Result<std::shared_ptr<EgressPrograms>> Load();
  ~EgressPrograms();
  EgressPrograms(const EgressPrograms&) = delete;
  EgressPrograms& operator=(const EgressPrograms&) = delete;

  // What the shared maps hold now (tests: a detached branch leaves nothing).
  struct Usage {
    size_t guarded = 0;  // cgroups with a config (attached guards)
    size_t rules = 0;    // allowlist entries of all of them
  };
  Result<Usage> MapUsage() const;

  // Puts the host's own addresses (every interface's, but loopback) and the
  // link-local ranges into the denied set (egress.h: host_denied). Load does
  // it, and Attach again for allowlist and lossy guards, so an address the
  // host gained since is covered from the next branch on. Entries are never
  // removed: an address the host gave up stays denied.
  Status RefreshHostAddresses();

  struct Impl;

 private:
  friend class EgressGuard;
  explicit EgressPrograms(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class EgressGuard {
 public:
  // Validates `network`, then configures and links the shared `programs` to
  // cgroup2_path (an absolute cgroup2 directory). Per branch this costs map
  // updates and 4 link creations, no program load. Errors:
  //   kInvalidArgument   bad allowlist entry, more than
  //                      SPECULA_EGRESS_MAX_BRANCH_RULES entries, not cgroup2
  //   kNotFound etc.     the directory cannot be opened
  //   kAlreadyExists     the cgroup, an ancestor or a descendant of it is
  //                      already guarded by `programs` (the hooks of both
  //                      would run for its tasks and count them twice)
  //   kResourceExhausted SPECULA_EGRESS_MAX_BRANCHES guards attached, or the
  //                      shared allowlist (SPECULA_EGRESS_MAX_RULES) is full
  static Result<EgressGuard> Attach(std::shared_ptr<EgressPrograms> programs, const std::string& cgroup2_path,
                                    const policy::Network& network);
  // The same with a private instance of the programs loaded for this guard
  // alone (~48 ms): for one-off users. kUnavailable if the kernel refuses
  // cgroup sock_addr programs.
  static Result<EgressGuard> Attach(const std::string& cgroup2_path, const policy::Network& network);

  EgressGuard(EgressGuard&&) noexcept;
  EgressGuard& operator=(EgressGuard&&) noexcept;
  ~EgressGuard();  // detaches

  // Sum over the cgroup and its descendants (the hooks charge the guarded
  // cgroup a caller is in or below).
  Result<EgressCounts> Counts() const;
  Result<uint64_t> DeniedCount() const;
  // Detaches now (idempotent): unlinks the programs, then deletes the
  // branch's map entries. The counters stay readable (as of the detach).
  void Detach();

  struct Impl;

 private:
  explicit EgressGuard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace specula::ebpf
