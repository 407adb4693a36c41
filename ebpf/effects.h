/* Shared between effects.bpf.c (kernel side) and effect_tracer.cpp (user
 * side): the ring-buffer record and the map values of the effect tracer.
 * Plain C, fixed-width types, no padding surprises: both compilers must lay
 * these out identically, so every struct is ordered largest-first and sizes
 * are asserted in effect_tracer.cpp. */
#ifndef SPECULA_EBPF_EFFECTS_H_
#define SPECULA_EBPF_EFFECTS_H_

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Room for each path in an event. A power of two so the BPF side can bound
 * the read length with a mask; longer paths are cut (and flagged). */
#define SPECULA_EFFECT_PATH_MAX 1024
#define SPECULA_EFFECT_COMM_LEN 16
/* How deep below a traced cgroup the kernel still attributes events to it. */
#define SPECULA_EFFECT_MAX_CGROUP_DEPTH 16

enum specula_effect_op {
  SPECULA_OP_NONE = 0,
  SPECULA_OP_OPEN = 1,        /* open for write/create/truncate */
  SPECULA_OP_OPEN_RANDOM = 2, /* open of /dev/random or /dev/urandom (any flags) */
  SPECULA_OP_UNLINK = 3,
  SPECULA_OP_RMDIR = 4,
  SPECULA_OP_RENAME = 5,
  SPECULA_OP_MKDIR = 6,
  SPECULA_OP_CHMOD = 7,
  SPECULA_OP_CHOWN = 8,
  SPECULA_OP_LINK = 9,
  SPECULA_OP_SYMLINK = 10,
  SPECULA_OP_TRUNCATE = 11,
  SPECULA_OP_EXEC = 12,
  SPECULA_OP_CONNECT = 13,
  SPECULA_OP_BIND = 14,
  SPECULA_OP_SEND = 15,       /* sendto/sendmsg with an explicit address */
  SPECULA_OP_FORK = 16,       /* a new process (not a thread) */
  SPECULA_OP_EXIT = 17,       /* the last thread of a process exited */
  SPECULA_OP_GETRANDOM = 18,
  SPECULA_OP_RECV = 19,       /* recvfrom/recvmsg */
  SPECULA_OP_MAX_ = 20,
};

/* Event flags (specula_effect_event.eflags). */
#define SPECULA_EFLAG_PATH_TRUNCATED 0x1  /* path or path2 filled its buffer */
#define SPECULA_EFLAG_PATH_FAULT 0x2      /* a user string could not be read */

struct specula_effect_event {
  __u64 time_ns;          /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at syscall exit */
  __u64 cgroup_id;        /* cgroup2 id of the acting task */
  __u64 traced_cgroup_id; /* the registered cgroup it was attributed to (itself or an ancestor) */
  __s64 result;           /* syscall return value (negative errno); 0 for fork/exec; exit: exit code */
  __u64 flags;            /* open flags, rename/link/at flags, send/recv flags */
  __u64 aux;              /* fork: child tgid; recv: socket family; getrandom: bytes asked; truncate: length */
  __u32 op;               /* enum specula_effect_op */
  __u32 pid;              /* kernel tid of the actor (host pid namespace) */
  __u32 tgid;             /* kernel tgid of the actor */
  __u32 mode;             /* create/chmod mode; chown: uid */
  __s32 fd;               /* dirfd of *at calls (AT_FDCWD = -100), or the fd of f* calls */
  __u32 eflags;           /* SPECULA_EFLAG_* */
  __u16 addr_family;      /* connect/bind/send/recv: AF_INET, AF_INET6, AF_UNIX or 0 */
  __u16 addr_port;        /* host byte order */
  __u8 addr[16];          /* IPv4 in the first 4 bytes, or IPv6 */
  char comm[SPECULA_EFFECT_COMM_LEN];
  char path[SPECULA_EFFECT_PATH_MAX];  /* as passed (relative to fd/cwd); AF_UNIX: sun_path */
  char path2[SPECULA_EFFECT_PATH_MAX]; /* rename/link/symlink: the new name */
};

/* Value of the traced_cgroups map (key: cgroup2 id). */
struct specula_traced_cgroup {
  __u64 emitted; /* events submitted for this cgroup */
  __u64 dropped; /* events lost because the ring buffer was full */
};

#endif /* SPECULA_EBPF_EFFECTS_H_ */
