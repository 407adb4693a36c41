// SPDX-License-Identifier: GPL-2.0
/* Egress policy for branches: cgroup sock_addr hooks on each branch's cgroup2
 * directory (and so on everything below it). They run before the route
 * lookup, so a refused destination never leaves the host and the caller sees
 * EPERM; loopback is always allowed (the branch's own netns).
 *
 * One loaded instance serves every branch (loading and verifying costs tens
 * of ms, too much per branch fork): each branch's mode, counters and
 * allowlist are map entries keyed by the guarded cgroup's id, found from the
 * caller by walking up its cgroup ancestors. A caller under an attachment
 * whose config is missing is denied (fail closed). */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ebpf/egress.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SPECULA_EGRESS_MAX_BRANCHES);
  __type(key, __u64); /* cgroup2 id of the guarded directory */
  __type(value, struct specula_egress_config);
} configs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, SPECULA_EGRESS_MAX_RULES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct specula_egress_key);
  __type(value, __u8);
} allowlist SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, SPECULA_EGRESS_MAX_HOST_ADDRS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct specula_egress_host_key);
  __type(value, __u8);
} host_denied SEC(".maps");

/* The config of the guarded cgroup the caller is in or below, and its id.
 * Tasks usually sit in the guarded directory itself (one lookup); the walk
 * covers sub-cgroups, whose tasks the attachment also hooks. Userspace never
 * guards a cgroup below another guarded one, so at most one level matches. */
static __always_inline struct specula_egress_config *config_for_current(__u64 *guarded)
{
  __u64 id = bpf_get_current_cgroup_id();
  struct specula_egress_config *c = bpf_map_lookup_elem(&configs, &id);
  if (c) {
    *guarded = id;
    return c;
  }
  for (int level = 1; level < SPECULA_EGRESS_MAX_DEPTH; level++) {
    id = bpf_get_current_ancestor_cgroup_id(level);
    if (id == 0) break; /* below the caller's own level */
    c = bpf_map_lookup_elem(&configs, &id);
    if (c) {
      *guarded = id;
      return c;
    }
  }
  return 0;
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

/* The address bits (IPv6 terms, 0..128) of the longest allowlist entry of
 * the guarded cgroup that matches, or -1. An entry's value is its bits. */
static __always_inline int allowlisted(__u64 guarded, const __u32 a[4], __u16 port)
{
  struct specula_egress_key key = {};
  key.prefixlen = SPECULA_EGRESS_KEY_BYTES * 8;
  __builtin_memcpy(&key.data[0], &guarded, 8);
  key.data[8] = port >> 8;
  key.data[9] = port & 0xff;
  __builtin_memcpy(&key.data[10], a, 16);
  __u8 *bits = bpf_map_lookup_elem(&allowlist, &key);
  if (bits) return *bits;
  key.data[8] = 0; /* entries for any port */
  key.data[9] = 0;
  bits = bpf_map_lookup_elem(&allowlist, &key);
  return bits ? *bits : -1;
}

static __always_inline bool host_address(const __u32 a[4])
{
  struct specula_egress_host_key key = {};
  key.prefixlen = 128;
  __builtin_memcpy(key.addr, a, 16);
  return bpf_map_lookup_elem(&host_denied, &key) != 0;
}

/* 1: let the call proceed; 0: the kernel fails it with EPERM. */
static __always_inline int decide(const __u32 a[4], __u16 port)
{
  if (is_local(a)) return 1;
  __u64 guarded = 0;
  struct specula_egress_config *c = config_for_current(&guarded);
  if (!c) return 0; /* attached here but no config (yet / any more): deny */
  /* The host's own addresses pass only an allowlist entry naming exactly
   * that address (an operator's deliberate choice), never lossy mode or a
   * range that happens to contain them. */
  bool host = c->mode != SPECULA_EGRESS_LOOPBACK_ONLY && host_address(a);
  if (c->mode == SPECULA_EGRESS_LOSSY && !host) {
    __sync_fetch_and_add(&c->counts.lossy, 1);
    return 1;
  }
  if (c->mode == SPECULA_EGRESS_ALLOWLIST) {
    int bits = allowlisted(guarded, a, port);
    if (bits >= 0 && (!host || bits == 128)) {
      __sync_fetch_and_add(&c->counts.allowed, 1);
      return 1;
    }
  }
  __sync_fetch_and_add(&c->counts.denied, 1);
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
