/* Shared between egress.bpf.c and egress_guard.cpp: the allowlist key, the
 * per-cgroup counters and the policy modes. Plain C, fixed-width types. */
#ifndef SPECULA_EBPF_EGRESS_H_
#define SPECULA_EBPF_EGRESS_H_

#ifndef __bpf__
#include <linux/types.h>
#endif

/* policy::NetworkMode as the kernel side sees it (set in rodata). */
enum specula_egress_mode {
  SPECULA_EGRESS_LOOPBACK_ONLY = 0, /* kNone and kLoopback */
  SPECULA_EGRESS_ALLOWLIST = 1,
  SPECULA_EGRESS_LOSSY = 2,         /* allow and count */
};

/* LPM trie key: 16 bits of port (host order, 0 = any port) followed by the
 * IPv6 address (IPv4 as ::ffff:a.b.c.d), so one trie serves both families
 * and "CIDR:port" is a prefix of (port, address). prefixlen counts bits of
 * data[] from the start: 16 + the CIDR's bits in IPv6 terms. */
#define SPECULA_EGRESS_KEY_BYTES 18
struct specula_egress_key {
  __u32 prefixlen;
  __u8 data[SPECULA_EGRESS_KEY_BYTES];
};

/* Value of the counters map (key: cgroup2 id of the calling task). */
struct specula_egress_counts {
  __u64 denied;        /* connect/sendmsg refused with EPERM */
  __u64 allowed;       /* non-loopback destinations let through (allowlist hits) */
  __u64 lossy;         /* non-loopback destinations let through under kLossyEgress */
};

#endif /* SPECULA_EBPF_EGRESS_H_ */
