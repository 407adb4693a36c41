// Egress enforcement for one branch: ebpf/egress.bpf.c's cgroup/connect4,
// connect6, sendmsg4 and sendmsg6 programs attached (as bpf_links) to the
// branch's cgroup2 directory, applying policy::Network:
//   kNone, kLoopback  only loopback destinations; everything else EPERM
//   kAllowlist        loopback + the listed CIDR:port endpoints
//   kLossyEgress      everything allowed, non-loopback destinations counted
// The hooks run before routing, so a refused packet never leaves. They
// complement the branch's network namespace (which has no route out unless
// the runtime gives it one). Detached when the guard is destroyed.
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

class EgressGuard {
 public:
  // Validates `network`, loads a private instance of the programs and
  // attaches them to cgroup2_path (a cgroup2 directory). kUnavailable if the
  // kernel refuses cgroup sock_addr programs.
  static Result<EgressGuard> Attach(const std::string& cgroup2_path, const policy::Network& network);

  EgressGuard(EgressGuard&&) noexcept;
  EgressGuard& operator=(EgressGuard&&) noexcept;
  ~EgressGuard();  // detaches

  // Sum over the cgroup and its descendants (counters are keyed by the
  // calling task's cgroup2 id).
  Result<EgressCounts> Counts() const;
  Result<uint64_t> DeniedCount() const;
  // Detaches now (idempotent); the counters stay readable.
  void Detach();

  struct Impl;

 private:
  explicit EgressGuard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace specula::ebpf
