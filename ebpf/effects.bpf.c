// SPDX-License-Identifier: GPL-2.0
/* Per-branch effect tracing. Every hook first asks "is the current task in a
 * traced cgroup (or below one)?" and returns at once when not, so untraced
 * processes pay one map lookup per hooked syscall and nothing else.
 *
 * System calls: the enter hook stashes the raw arguments of a hooked syscall
 * by pid_tgid, the exit hook reads the user strings (the kernel has just
 * copied them, so their pages are resident) and emits one event carrying
 * the result. Two hook sets do this (per-syscall tracepoints, or raw
 * sys_enter/sys_exit; see below). Process lifetime (fork, exit, exec) comes
 * from the sched raw tracepoints, which see the task_structs.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "ebpf/effects.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200

/* Static settings, fixed at load time. */
const volatile __u32 path_max = SPECULA_EFFECT_PATH_MAX;
const volatile bool trace_descendants = true;
/* Wake the consumer only once this much is pending: a wakeup per event
 * would cost the traced action a context switch per system call. 0: wake
 * for every event. The consumer also polls on a timer and drains on demand. */
const volatile __u64 wakeup_bytes = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* cgroup2 id */
  __type(value, struct specula_traced_cgroup);
} traced_cgroups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 8 << 20);
} events SEC(".maps");

/* What a sys_enter hook keeps for its sys_exit hook. */
struct pending_call {
  __u64 traced_cgroup_id;
  __u64 path;      /* user pointers, 0 if none */
  __u64 path2;
  __u64 addr;      /* struct sockaddr * */
  __u64 msg;       /* struct user_msghdr * (sendmsg/recvmsg): msg_name is read at exit */
  __u64 how;       /* struct open_how * (openat2): flags are read at exit */
  __u64 flags;
  __u64 aux;
  __u32 op;
  __u32 mode;
  __s32 fd;
  __u32 addr_len;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64); /* pid_tgid */
  __type(value, struct pending_call);
} pending SEC(".maps");

/* The registered cgroup the current task belongs to (itself or the nearest
 * registered ancestor), or 0 when it is not traced. */
static __always_inline __u64 traced_cgroup(void)
{
  __u64 id = bpf_get_current_cgroup_id();
  if (bpf_map_lookup_elem(&traced_cgroups, &id)) return id;
  if (!trace_descendants) return 0;
  for (int level = 1; level < SPECULA_EFFECT_MAX_CGROUP_DEPTH; level++) {
    __u64 anc = bpf_get_current_ancestor_cgroup_id(level);
    if (anc == 0 || anc == id) return 0; /* reached our own level: not below a traced one */
    if (bpf_map_lookup_elem(&traced_cgroups, &anc)) return anc;
  }
  return 0;
}

static __always_inline struct specula_effect_event *reserve(__u64 traced)
{
  struct specula_traced_cgroup *tc = bpf_map_lookup_elem(&traced_cgroups, &traced);
  struct specula_effect_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    if (tc) __sync_fetch_and_add(&tc->dropped, 1);
    return 0;
  }
  if (tc) __sync_fetch_and_add(&tc->emitted, 1);
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  e->time_ns = bpf_ktime_get_ns();
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->traced_cgroup_id = traced;
  e->pid = (__u32)pid_tgid;
  e->tgid = pid_tgid >> 32;
  e->result = 0;
  e->flags = 0;
  e->aux = 0;
  e->op = 0;
  e->mode = 0;
  e->fd = AT_FDCWD;
  e->eflags = 0;
  e->addr_family = 0;
  e->addr_port = 0;
  __builtin_memset(e->addr, 0, sizeof(e->addr));
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  e->path[0] = 0;
  e->path2[0] = 0;
  return e;
}

static __always_inline void submit(struct specula_effect_event *e)
{
  __u64 flags = 0;
  if (wakeup_bytes)
    flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + sizeof(*e) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                                         : BPF_RB_NO_WAKEUP;
  bpf_ringbuf_submit(e, flags);
}

static __always_inline void read_user_path(struct specula_effect_event *e, char *dst, __u64 src)
{
  if (!src) return;
  __u32 n = path_max;
  if (n > SPECULA_EFFECT_PATH_MAX) n = SPECULA_EFFECT_PATH_MAX;
  long got = bpf_probe_read_user_str(dst, n, (const void *)src);
  if (got < 0) {
    dst[0] = 0;
    e->eflags |= SPECULA_EFLAG_PATH_FAULT;
  } else if (got >= n) {
    e->eflags |= SPECULA_EFLAG_PATH_TRUNCATED;
  }
}

/* Copies a user sockaddr into the event: IP + port, or an AF_UNIX path. */
static __always_inline void read_sockaddr(struct specula_effect_event *e, __u64 uaddr, __u32 len)
{
  if (!uaddr || len < 2) return;
  __u16 family = 0;
  if (bpf_probe_read_user(&family, sizeof(family), (const void *)uaddr)) return;
  e->addr_family = family;
  if (family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in sin = {};
    if (bpf_probe_read_user(&sin, sizeof(sin), (const void *)uaddr)) return;
    e->addr_port = bpf_ntohs(sin.sin_port);
    __builtin_memcpy(e->addr, &sin.sin_addr.s_addr, 4);
  } else if (family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 sin6 = {};
    if (bpf_probe_read_user(&sin6, sizeof(sin6), (const void *)uaddr)) return;
    e->addr_port = bpf_ntohs(sin6.sin6_port);
    __builtin_memcpy(e->addr, &sin6.sin6_addr, 16);
  } else if (family == AF_UNIX && len > 2) {
    /* sun_path may lack a NUL; the 108-byte bound of sockaddr_un keeps the
     * read inside what the caller passed. Abstract names start with NUL and
     * come out empty. */
    bpf_probe_read_user_str(e->path, 108, (const void *)(uaddr + 2));
  }
}

/* The socket family of fd in the current task, or 0. Used for receives,
 * whose peer address is optional: tells network input from a local pipe. */
static __always_inline __u16 socket_family(int fd)
{
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
  unsigned int max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
  if (fd < 0 || (unsigned int)fd >= max_fds) return 0;
  struct file *f = 0;
  if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f) return 0;
  struct socket *sock = BPF_CORE_READ(f, private_data);
  if (!sock) return 0;
  return BPF_CORE_READ(sock, sk, __sk_common.skc_family);
}

static __always_inline bool str_equal(const char *p, const char *lit, int len_with_nul)
{
  for (int i = 0; i < len_with_nul; i++)
    if (p[i] != lit[i]) return false;
  return true;
}

/* "/dev/random" or "/dev/urandom" (constant offsets only: the verifier
 * refuses arithmetic on stack pointers). */
static __always_inline bool is_random_device(const char *p)
{
  return str_equal(p, "/dev/random", 12) || str_equal(p, "/dev/urandom", 13);
}

static __always_inline int finish(long ret)
{
  __u64 key = bpf_get_current_pid_tgid();
  struct pending_call *pc = bpf_map_lookup_elem(&pending, &key);
  if (!pc) return 0;
  struct pending_call c = *pc;
  bpf_map_delete_elem(&pending, &key);

  if (c.how) { /* openat2: the flags live in user memory the kernel has copied */
    struct open_how how = {};
    if (bpf_probe_read_user(&how, sizeof(how), (const void *)c.how) == 0) c.flags = how.flags;
  }
  if (c.op == SPECULA_OP_OPEN && !(c.flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))) {
    /* A read-only open matters only when it reads randomness. */
    char head[16] = {};
    if (bpf_probe_read_user_str(head, sizeof(head), (const void *)c.path) < 0) return 0;
    if (!is_random_device(head)) return 0;
    c.op = SPECULA_OP_OPEN_RANDOM;
  }
  if (c.op == SPECULA_OP_EXEC && ret == 0) return 0; /* reported by sched_process_exec */
  if (c.msg) {
    struct user_msghdr m = {};
    if (bpf_probe_read_user(&m, sizeof(m), (const void *)c.msg) == 0) {
      c.addr = (__u64)m.msg_name;
      c.addr_len = m.msg_namelen;
    }
    if (c.op == SPECULA_OP_SEND && !c.addr) return 0; /* connected socket: its connect was reported */
  }

  struct specula_effect_event *e = reserve(c.traced_cgroup_id);
  if (!e) return 0;
  e->op = c.op;
  e->result = ret;
  e->flags = c.flags;
  e->mode = c.mode;
  e->fd = c.fd;
  e->aux = c.aux;
  read_user_path(e, e->path, c.path);
  read_user_path(e, e->path2, c.path2);
  if (c.op == SPECULA_OP_RECV) {
    /* The peer address is an output here: read what the kernel filled in.
     * recvfrom passes a pointer to its length (kept in aux); recvmsg's
     * msg_namelen was already read back from the msghdr above. */
    __u64 alen_ptr = c.msg ? 0 : c.aux;
    e->aux = ret >= 0 ? socket_family(c.fd) : 0;
    if (c.addr && ret >= 0) {
      __u32 alen = c.addr_len;
      if (alen_ptr && bpf_probe_read_user(&alen, sizeof(alen), (const void *)alen_ptr)) alen = 0;
      read_sockaddr(e, c.addr, alen);
    }
  } else if (c.addr) {
    read_sockaddr(e, c.addr, c.addr_len);
  }
  submit(e);
  return 0;
}

/* x86_64 system call numbers (the programs are built for __TARGET_ARCH_x86).
 * 32-bit (ia32) tasks use other numbers and are not traced: see sys_enter. */
#define NR_open 2
#define NR_connect 42
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_bind 49
#define NR_execve 59
#define NR_truncate 76
#define NR_ftruncate 77
#define NR_rename 82
#define NR_mkdir 83
#define NR_rmdir 84
#define NR_creat 85
#define NR_link 86
#define NR_unlink 87
#define NR_symlink 88
#define NR_chmod 90
#define NR_fchmod 91
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_openat 257
#define NR_mkdirat 258
#define NR_fchownat 260
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_fchmodat 268
#define NR_renameat2 316
#define NR_getrandom 318
#define NR_execveat 322
#define NR_openat2 437
#define NR_fchmodat2 452
#define USER64_CS 0x33

/* Which syscalls are effects: the first test on every syscall of every task,
 * so it must stay a handful of compares. */
static __always_inline bool hooked(long id)
{
  switch (id) {
  case NR_open: case NR_creat: case NR_openat: case NR_openat2:
  case NR_unlink: case NR_unlinkat: case NR_rmdir:
  case NR_rename: case NR_renameat: case NR_renameat2:
  case NR_mkdir: case NR_mkdirat:
  case NR_chmod: case NR_fchmod: case NR_fchmodat: case NR_fchmodat2:
  case NR_chown: case NR_lchown: case NR_fchown: case NR_fchownat:
  case NR_link: case NR_linkat: case NR_symlink: case NR_symlinkat:
  case NR_truncate: case NR_ftruncate:
  case NR_execve: case NR_execveat:
  case NR_connect: case NR_bind: case NR_sendto: case NR_sendmsg:
  case NR_getrandom: case NR_recvfrom: case NR_recvmsg:
    return true;
  default:
    return false;
  }
}

/* Fills c from the raw arguments a[0..5]; false: nothing to report. */
static __always_inline bool fill(long id, const unsigned long *a, struct pending_call *c)
{
  c->fd = AT_FDCWD;
  switch (id) {
  /* Opens: which ones are effects is decided at exit, from the flags. */
  case NR_open: c->op = SPECULA_OP_OPEN; c->path = a[0]; c->flags = a[1]; c->mode = a[2]; return true;
  case NR_creat: c->op = SPECULA_OP_OPEN; c->path = a[0]; c->flags = O_CREAT | O_WRONLY | O_TRUNC; c->mode = a[1]; return true;
  case NR_openat: c->op = SPECULA_OP_OPEN; c->fd = a[0]; c->path = a[1]; c->flags = a[2]; c->mode = a[3]; return true;
  case NR_openat2: c->op = SPECULA_OP_OPEN; c->fd = a[0]; c->path = a[1]; c->how = a[2]; return true;
  /* Removals. */
  case NR_unlink: c->op = SPECULA_OP_UNLINK; c->path = a[0]; return true;
  case NR_unlinkat:
    c->op = (a[2] & AT_REMOVEDIR) ? SPECULA_OP_RMDIR : SPECULA_OP_UNLINK;
    c->fd = a[0]; c->path = a[1]; c->flags = a[2]; return true;
  case NR_rmdir: c->op = SPECULA_OP_RMDIR; c->path = a[0]; return true;
  /* Renames (path2: the new name; fd: the old name's dirfd). */
  case NR_rename: c->op = SPECULA_OP_RENAME; c->path = a[0]; c->path2 = a[1]; return true;
  case NR_renameat: c->op = SPECULA_OP_RENAME; c->fd = a[0]; c->path = a[1]; c->path2 = a[3]; return true;
  case NR_renameat2: c->op = SPECULA_OP_RENAME; c->fd = a[0]; c->path = a[1]; c->path2 = a[3]; c->flags = a[4]; return true;
  /* Directories. */
  case NR_mkdir: c->op = SPECULA_OP_MKDIR; c->path = a[0]; c->mode = a[1]; return true;
  case NR_mkdirat: c->op = SPECULA_OP_MKDIR; c->fd = a[0]; c->path = a[1]; c->mode = a[2]; return true;
  /* Permissions and owners (chown: mode = uid, aux = gid). */
  case NR_chmod: c->op = SPECULA_OP_CHMOD; c->path = a[0]; c->mode = a[1]; return true;
  case NR_fchmod: c->op = SPECULA_OP_CHMOD; c->fd = a[0]; c->mode = a[1]; return true;
  case NR_fchmodat: c->op = SPECULA_OP_CHMOD; c->fd = a[0]; c->path = a[1]; c->mode = a[2]; return true;
  case NR_fchmodat2: c->op = SPECULA_OP_CHMOD; c->fd = a[0]; c->path = a[1]; c->mode = a[2]; c->flags = a[3]; return true;
  case NR_chown:
  case NR_lchown: c->op = SPECULA_OP_CHOWN; c->path = a[0]; c->mode = a[1]; c->aux = a[2]; return true;
  case NR_fchown: c->op = SPECULA_OP_CHOWN; c->fd = a[0]; c->mode = a[1]; c->aux = a[2]; return true;
  case NR_fchownat: c->op = SPECULA_OP_CHOWN; c->fd = a[0]; c->path = a[1]; c->mode = a[2]; c->aux = a[3]; c->flags = a[4]; return true;
  /* Links (path: the existing target, path2: the new name). */
  case NR_link: c->op = SPECULA_OP_LINK; c->path = a[0]; c->path2 = a[1]; return true;
  case NR_linkat: c->op = SPECULA_OP_LINK; c->fd = a[0]; c->path = a[1]; c->path2 = a[3]; c->flags = a[4]; return true;
  case NR_symlink: c->op = SPECULA_OP_SYMLINK; c->path = a[0]; c->path2 = a[1]; return true;
  case NR_symlinkat: c->op = SPECULA_OP_SYMLINK; c->path = a[0]; c->fd = a[1]; c->path2 = a[2]; return true;
  /* Truncation (aux: the new length). */
  case NR_truncate: c->op = SPECULA_OP_TRUNCATE; c->path = a[0]; c->aux = a[1]; return true;
  case NR_ftruncate: c->op = SPECULA_OP_TRUNCATE; c->fd = a[0]; c->aux = a[1]; return true;
  /* Exec: failures only at exit (a successful exec replaced the memory
   * holding the path; sched_process_exec reports it instead). */
  case NR_execve: c->op = SPECULA_OP_EXEC; c->path = a[0]; return true;
  case NR_execveat: c->op = SPECULA_OP_EXEC; c->fd = a[0]; c->path = a[1]; c->flags = a[4]; return true;
  /* Network. */
  case NR_connect: c->op = SPECULA_OP_CONNECT; c->fd = a[0]; c->addr = a[1]; c->addr_len = a[2]; return true;
  case NR_bind: c->op = SPECULA_OP_BIND; c->fd = a[0]; c->addr = a[1]; c->addr_len = a[2]; return true;
  case NR_sendto:
    if (!a[4]) return false; /* no address: a connected socket, its connect was reported */
    c->op = SPECULA_OP_SEND; c->fd = a[0]; c->flags = a[3]; c->addr = a[4]; c->addr_len = a[5]; return true;
  case NR_sendmsg: c->op = SPECULA_OP_SEND; c->fd = a[0]; c->msg = a[1]; c->flags = a[2]; return true;
  /* Nondeterministic input. recvfrom: aux holds the user pointer to the address length. */
  case NR_getrandom: c->op = SPECULA_OP_GETRANDOM; c->aux = a[1]; c->flags = a[2]; return true;
  case NR_recvfrom: c->op = SPECULA_OP_RECV; c->fd = a[0]; c->flags = a[3]; c->addr = a[4]; c->aux = a[5]; return true;
  case NR_recvmsg: c->op = SPECULA_OP_RECV; c->fd = a[0]; c->flags = a[2]; return true;
  default:
    return false;
  }
}

static __always_inline int on_enter(long id, const unsigned long *a, __u64 traced)
{
  struct pending_call c = {};
  if (!fill(id, a, &c)) return 0;
  c.traced_cgroup_id = traced;
  __u64 key = bpf_get_current_pid_tgid();
  bpf_map_update_elem(&pending, &key, &c, BPF_ANY);
  return 0;
}

/* Two ways to hook system calls; the loader enables exactly one of them.
 *
 * 1. Per-syscall tracepoints (default): only hooked syscalls run a program,
 *    so processes that are not traced pay little on every other syscall.
 *    Needs tracefs to attach, and ~70 links (slow to detach). */
/* The kernel refuses to attach a program that reads past the tracepoint's
 * record, which holds only the syscall's own arguments: read exactly
 * nargs of them (a constant, so the other reads compile away). */
#define TRACE_SYSCALL(name, nargs)                                             \
  SEC("tracepoint/syscalls/sys_enter_" #name)                                  \
  int enter_##name(struct trace_event_raw_sys_enter *ctx)                      \
  {                                                                            \
    __u64 traced = traced_cgroup();                                            \
    if (!traced) return 0;                                                     \
    unsigned long a[6] = {};                                                   \
    if (nargs > 0) a[0] = ctx->args[0];                                        \
    if (nargs > 1) a[1] = ctx->args[1];                                        \
    if (nargs > 2) a[2] = ctx->args[2];                                        \
    if (nargs > 3) a[3] = ctx->args[3];                                        \
    if (nargs > 4) a[4] = ctx->args[4];                                        \
    if (nargs > 5) a[5] = ctx->args[5];                                        \
    return on_enter(NR_##name, a, traced);                                     \
  }                                                                            \
  SEC("tracepoint/syscalls/sys_exit_" #name)                                   \
  int exit_##name(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

TRACE_SYSCALL(open, 3)
TRACE_SYSCALL(creat, 2)
TRACE_SYSCALL(openat, 4)
TRACE_SYSCALL(openat2, 4)
TRACE_SYSCALL(unlink, 1)
TRACE_SYSCALL(unlinkat, 3)
TRACE_SYSCALL(rmdir, 1)
TRACE_SYSCALL(rename, 2)
TRACE_SYSCALL(renameat, 4)
TRACE_SYSCALL(renameat2, 5)
TRACE_SYSCALL(mkdir, 2)
TRACE_SYSCALL(mkdirat, 3)
TRACE_SYSCALL(chmod, 2)
TRACE_SYSCALL(fchmod, 2)
TRACE_SYSCALL(fchmodat, 3)
TRACE_SYSCALL(fchmodat2, 4)
TRACE_SYSCALL(chown, 3)
TRACE_SYSCALL(lchown, 3)
TRACE_SYSCALL(fchown, 3)
TRACE_SYSCALL(fchownat, 5)
TRACE_SYSCALL(link, 2)
TRACE_SYSCALL(linkat, 5)
TRACE_SYSCALL(symlink, 2)
TRACE_SYSCALL(symlinkat, 3)
TRACE_SYSCALL(truncate, 2)
TRACE_SYSCALL(ftruncate, 2)
TRACE_SYSCALL(execve, 3)
TRACE_SYSCALL(execveat, 5)
TRACE_SYSCALL(connect, 3)
TRACE_SYSCALL(bind, 3)
TRACE_SYSCALL(sendto, 6)
TRACE_SYSCALL(sendmsg, 3)
TRACE_SYSCALL(getrandom, 3)
TRACE_SYSCALL(recvfrom, 6)
TRACE_SYSCALL(recvmsg, 3)

/* 2. Raw sys_enter/sys_exit (fallback): two links, no tracefs, cheaper per
 *    hooked syscall, but every syscall of every task runs the (short)
 *    hooked() test. */
SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
  if (!hooked(id)) return 0;
  __u64 traced = traced_cgroup();
  if (!traced) return 0;
  struct pt_regs r;
  if (bpf_probe_read_kernel(&r, sizeof(r), regs)) return 0;
  if (r.cs != USER64_CS) return 0; /* ia32 task: other syscall numbers */
  const unsigned long a[6] = {r.di, r.si, r.dx, r.r10, r.r8, r.r9};
  return on_enter(id, a, traced);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
  long id = BPF_CORE_READ(regs, orig_ax);
  if (!hooked(id)) return 0;
  return finish(ret);
}

/* A new process (threads are not processes: CLONE_THREAD children share the
 * parent's tgid and are skipped). The child starts in the parent's cgroup. */
SEC("raw_tp/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
  pid_t child_pid = BPF_CORE_READ(child, pid);
  pid_t child_tgid = BPF_CORE_READ(child, tgid);
  if (child_pid != child_tgid) return 0;
  __u64 traced = traced_cgroup();
  if (!traced) return 0;
  struct specula_effect_event *e = reserve(traced);
  if (!e) return 0;
  e->op = SPECULA_OP_FORK;
  e->aux = child_tgid;
  submit(e);
  return 0;
}

/* The last thread of a process exits (signal->live already dropped to 0:
 * do_exit decrements it before this tracepoint). */
SEC("raw_tp/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
  __u64 key = bpf_get_current_pid_tgid();
  bpf_map_delete_elem(&pending, &key); /* a syscall that never returned (exit_group) */
  __u64 traced = traced_cgroup();
  if (!traced) return 0;
  int live = BPF_CORE_READ(task, signal, live.counter);
  if (live != 0) return 0;
  struct specula_effect_event *e = reserve(traced);
  if (!e) return 0;
  e->op = SPECULA_OP_EXIT;
  e->result = BPF_CORE_READ(task, signal, group_exit_code);
  if (e->result == 0) e->result = BPF_CORE_READ(task, exit_code);
  submit(e);
  return 0;
}

/* A successful exec: the file name comes from the kernel's copy. */
SEC("raw_tp/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
  __u64 key = bpf_get_current_pid_tgid();
  bpf_map_delete_elem(&pending, &key);
  __u64 old_key = (key & 0xffffffff00000000ULL) | (__u32)old_pid; /* exec from a non-leader thread */
  bpf_map_delete_elem(&pending, &old_key);
  __u64 traced = traced_cgroup();
  if (!traced) return 0;
  struct specula_effect_event *e = reserve(traced);
  if (!e) return 0;
  e->op = SPECULA_OP_EXEC;
  const char *filename = BPF_CORE_READ(bprm, filename);
  __u32 n = path_max;
  if (n > SPECULA_EFFECT_PATH_MAX) n = SPECULA_EFFECT_PATH_MAX;
  long got = bpf_probe_read_kernel_str(e->path, n, filename);
  if (got < 0) e->path[0] = 0;
  else if (got >= n) e->eflags |= SPECULA_EFLAG_PATH_TRUNCATED;
  submit(e);
  return 0;
}
