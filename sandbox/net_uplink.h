// A route out of a sandbox's network namespace, for the policy's
// `allowlist` and `lossy` network modes: slirp4netns (a user-mode TCP/IP
// stack) attached to the namespace through a tap device, with the usual
// slirp addresses inside (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3).
//
// Why user mode and not a veth pair with NAT: every branch restored from one
// CRIU image carries the same addresses, which a per-branch veth would have
// to route apart on the host, and the host may have no nftables/iptables.
// slirp4netns needs neither and touches no host network state; its
// connections leave from the host's own sockets. The host's loopback stays
// unreachable (--disable-host-loopback). What a branch may reach is the
// egress guard's decision (ebpf/egress_guard.h), made at connect/sendmsg in
// the branch's cgroup before any packet reaches the tap device.
//
// CRIU cannot checkpoint the tap device (its fd lives in slirp4netns), so a
// sandbox drops its uplink before a dump and a restored one gets a new one:
// listening sockets survive that, established connections to the outside
// do not.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::sandbox {

class NetUplink {
 public:
  NetUplink() = default;
  NetUplink(NetUplink&& o) noexcept;
  NetUplink& operator=(NetUplink&& o) noexcept;
  NetUplink(const NetUplink&) = delete;
  NetUplink& operator=(const NetUplink&) = delete;
  ~NetUplink() { Stop(); }

  // Attaches slirp4netns to the network namespace of `pid` and waits until
  // the namespace's tap0 is configured. kUnavailable when slirp4netns is not
  // installed (scripts/setup.sh installs it).
  static Result<NetUplink> Start(pid_t pid);

  bool running() const { return pid_ > 0; }
  // Ends slirp4netns (and with it the tap device). Idempotent.
  void Stop();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  // slirp4netns exits when this pipe's write end closes: also when the
  // runtime dies without running Stop.
  UniqueFd exit_w_;
};

}  // namespace specula::sandbox
