/* Shared between egress.bpf.c and egress_guard.cpp: the map layouts, their
 * bounds and the policy modes. Plain C, fixed-width types.
 *
 * One loaded instance of the programs serves every guarded branch: the
 * per-branch policy lives in maps keyed by the branch's cgroup2 id (the
 * directory the programs are attached to), so a branch fork only writes map
 * entries and creates links instead of loading and verifying programs. */
#ifndef SPECULA_EBPF_EGRESS_H_
#define SPECULA_EBPF_EGRESS_H_

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Bounds of the shared maps. Branches: guarded cgroups attached at the same
 * time (configs entries). Rules: allowlist entries of all of them together
 * (the LPM trie); one branch may use at most SPECULA_EGRESS_MAX_BRANCH_RULES. */
#define SPECULA_EGRESS_MAX_BRANCHES 4096
#define SPECULA_EGRESS_MAX_RULES 65536
#define SPECULA_EGRESS_MAX_BRANCH_RULES 1024
/* Cgroup levels the hook walks up from the caller's cgroup to find its
 * guarded ancestor (cgroup hooks also run for tasks in sub-cgroups). */
#define SPECULA_EGRESS_MAX_DEPTH 32

/* policy::NetworkMode as the kernel side sees it. */
enum specula_egress_mode {
  SPECULA_EGRESS_LOOPBACK_ONLY = 0, /* kNone and kLoopback */
  SPECULA_EGRESS_ALLOWLIST = 1,
  SPECULA_EGRESS_LOSSY = 2,         /* allow and count */
};

struct specula_egress_counts {
  __u64 denied;        /* connect/sendmsg refused with EPERM */
  __u64 allowed;       /* non-loopback destinations let through (allowlist hits) */
  __u64 lossy;         /* non-loopback destinations let through under kLossyEgress */
};

/* Value of the configs map (key: cgroup2 id of the guarded directory). The
 * counters live next to the mode: they are summed over the cgroup and its
 * descendants because the hook charges the guarded ancestor it found. */
struct specula_egress_config {
  __u32 mode; /* enum specula_egress_mode */
  __u32 pad;
  struct specula_egress_counts counts;
};

/* LPM trie key: the guarded cgroup2 id (8 bytes, native order, always fully
 * matched so branches never see each other's rules), 16 bits of port (network
 * order, 0 = any port), then the IPv6 address (IPv4 as ::ffff:a.b.c.d). One
 * trie serves every branch and both families, and "CIDR:port" is a prefix of
 * (cgroup, port, address). prefixlen counts bits of data[] from the start:
 * 64 + 16 + the CIDR's bits in IPv6 terms. */
#define SPECULA_EGRESS_KEY_BYTES 26
#define SPECULA_EGRESS_KEY_FIXED_BITS ((8 + 2) * 8)
struct specula_egress_key {
  __u32 prefixlen;
  __u8 data[SPECULA_EGRESS_KEY_BYTES];
};

/* Destinations no branch reaches in allowlist or lossy mode, whatever its
 * rules: the host's own addresses (a branch's traffic leaves through
 * slirp4netns on the host, so a host service would see it coming from the
 * host itself, as trusted as its loopback, which is never reachable either)
 * and link-local ranges (cloud metadata at 169.254.169.254); an allowlist
 * entry naming exactly one of those addresses still lets it through (the
 * allowlist trie's value is each entry's address bits). One LPM trie
 * for every branch, keyed by the IPv6-form address (IPv4 as ::ffff:a.b.c.d);
 * userspace fills it when the programs load and again at each attach
 * (EgressPrograms::RefreshHostAddresses). */
#define SPECULA_EGRESS_MAX_HOST_ADDRS 1024
struct specula_egress_host_key {
  __u32 prefixlen;
  __u8 addr[16];
};

#endif /* SPECULA_EBPF_EGRESS_H_ */
