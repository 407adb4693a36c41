// SPDX-License-Identifier: GPL-2.0
/* Egress policy for one branch: cgroup sock_addr hooks on the branch's
 * cgroup2 directory (and so on everything below it). They run before the
 * route lookup, so a refused destination never leaves the host and the
 * caller sees EPERM; loopback is always allowed (the branch's own netns).
 * One loaded instance per branch: the mode is rodata, the allowlist a map. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ebpf/egress.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 mode = SPECULA_EGRESS_LOOPBACK_ONLY;

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1024);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct specula_egress_key);
  __type(value, __u8);
} allowlist SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64); /* cgroup2 id of the caller */
  __type(value, struct specula_egress_counts);
} counters SEC(".maps");

static __always_inline struct specula_egress_counts *counts_for_current(void)
{
  __u64 id = bpf_get_current_cgroup_id();
  struct specula_egress_counts *c = bpf_map_lookup_elem(&counters, &id);
  if (c) return c;
  struct specula_egress_counts zero = {};
  bpf_map_update_elem(&counters, &id, &zero, BPF_NOEXIST);
  return bpf_map_lookup_elem(&counters, &id);
}

/* 127/8, ::1, ::ffff:127/104, and the unspecified addresses (which connect to
 * the local host). a is the IPv6 form, 4 words in network order. */
static __always_inline bool is_local(const __u32 a[4])
{
  if (a[0] == 0 && a[1] == 0) {
    if (a[2] == 0 && (a[3] == 0 || a[3] == bpf_htonl(1))) return true;
    if (a[2] == bpf_htonl(0xffff))
      return (bpf_ntohl(a[3]) >> 24) == 127 || a[3] == 0;
  }
  return false;
}

static __always_inline bool allowlisted(const __u32 a[4], __u16 port)
{
  struct specula_egress_key key = {};
  key.prefixlen = SPECULA_EGRESS_KEY_BYTES * 8;
  __builtin_memcpy(&key.data[2], a, 16);
  key.data[0] = port >> 8;
  key.data[1] = port & 0xff;
  if (bpf_map_lookup_elem(&allowlist, &key)) return true;
  key.data[0] = 0; /* entries for any port */
  key.data[1] = 0;
  return bpf_map_lookup_elem(&allowlist, &key) != 0;
}

/* 1: let the call proceed; 0: the kernel fails it with EPERM. */
static __always_inline int decide(const __u32 a[4], __u16 port)
{
  if (is_local(a)) return 1;
  struct specula_egress_counts *c = counts_for_current();
  if (mode == SPECULA_EGRESS_LOSSY) {
    if (c) __sync_fetch_and_add(&c->lossy, 1);
    return 1;
  }
  if (mode == SPECULA_EGRESS_ALLOWLIST && allowlisted(a, port)) {
    if (c) __sync_fetch_and_add(&c->allowed, 1);
    return 1;
  }
  if (c) __sync_fetch_and_add(&c->denied, 1);
  return 0;
}

static __always_inline int decide4(struct bpf_sock_addr *ctx)
{
  __u32 a[4] = {0, 0, bpf_htonl(0xffff), ctx->user_ip4};
  return decide(a, bpf_ntohs((__u16)ctx->user_port));
}

static __always_inline int decide6(struct bpf_sock_addr *ctx)
{
  __u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
  return decide(a, bpf_ntohs((__u16)ctx->user_port));
}

SEC("cgroup/connect4")
int egress_connect4(struct bpf_sock_addr *ctx) { return decide4(ctx); }

SEC("cgroup/sendmsg4")
int egress_sendmsg4(struct bpf_sock_addr *ctx) { return decide4(ctx); }

SEC("cgroup/connect6")
int egress_connect6(struct bpf_sock_addr *ctx) { return decide6(ctx); }

SEC("cgroup/sendmsg6")
int egress_sendmsg6(struct bpf_sock_addr *ctx) { return decide6(ctx); }
