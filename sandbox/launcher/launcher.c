/* The action launcher: the small program between the runtime and an
 * action's bash, so that no process a sandbox can see is ever a copy of the
 * runtime (CVE-2019-5736: /proc/<pid>/exe of such a process names the
 * runtime's binary) or holds one of its fds (CVE-2024-21626).
 *
 * The runtime forks, moves exactly the fds listed in launch_plan.h onto
 * their slots, closes every other fd and execs this program from a sealed
 * memfd (so /proc/<pid>/exe names an anonymous, unwritable file). Here, in
 * order: non-dumpable (before anything else: exec made us dumpable again),
 * read and check the plan, join the v1 cgroups, setns into init's
 * namespaces (user namespace first, then the ids of its root), then
 * clone3(CLONE_PARENT | CLONE_INTO_CGROUP): the action is the runtime's
 * child and lives in the sandbox's pid namespace and cgroup. The action
 * enters the cgroup namespace, closes the fds it no longer needs, takes
 * its stdio, rlimits, capabilities, no_new_privs, installs the seccomp
 * filter (sending its listener when the policy defers) and execs bash. The
 * launcher itself writes the action's pid and exits.
 *
 * Freestanding (no libc, static, x86_64 raw syscalls) like the sandbox's
 * init: a few KiB, no dynamic loader, nothing mapped from the host's libs.
 * Failures are ChildFailure records (common/child_report.h) on the report
 * fd, as the runtime's other children write them. */
#include "launch_plan.h"

typedef unsigned long u64;
typedef long s64;

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_dup2 33
#define SYS_sendmsg 46
#define SYS_execve 59
#define SYS_chdir 80
#define SYS_prlimit64 302
#define SYS_setresuid 117
#define SYS_setresgid 119
#define SYS_setgroups 116
#define SYS_setsid 112
#define SYS_capset 126
#define SYS_prctl 157
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_setns 308
#define SYS_seccomp 317
#define SYS_clone3 435
#define SYS_close_range 436

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_CLOEXEC 02000000
#define PR_SET_DUMPABLE 4
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAPBSET_DROP 24
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define CLONE_PARENT 0x00008000UL
#define CLONE_NEWCGROUP 0x02000000UL
#define CLONE_NEWUSER 0x10000000UL
#define CLONE_INTO_CGROUP 0x200000000UL
#define CLOSE_RANGE_CLOEXEC 4
#define RLIMIT_NOFILE 7
#define RLIMIT_CORE 4
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_NEW_LISTENER 8
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_NOSIGNAL 0x4000
#define EINVAL 22

static s64 sys6(s64 n, s64 a, s64 b, s64 c, s64 d, s64 e, s64 f) {
  s64 ret;
  register s64 r10 __asm__("r10") = d;
  register s64 r8 __asm__("r8") = e;
  register s64 r9 __asm__("r9") = f;
  __asm__ __volatile__("syscall"
                       : "=a"(ret)
                       : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                       : "rcx", "r11", "memory");
  return ret;
}
#define sys1(n, a) sys6((n), (s64)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6((n), (s64)(a), (s64)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6((n), (s64)(a), (s64)(b), (s64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6((n), (s64)(a), (s64)(b), (s64)(c), (s64)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6((n), (s64)(a), (s64)(b), (s64)(c), (s64)(d), (s64)(e), 0)

/* The compiler may emit calls to these for struct copies and zeroing. */
void* memset(void* d, int c, u64 n) {
  unsigned char* p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void* memcpy(void* d, const void* s, u64 n) {
  unsigned char* p = d;
  const unsigned char* q = s;
  while (n--) *p++ = *q++;
  return d;
}

/* common/child_report.h's ChildFailure. */
struct failure {
  char step[56];
  int sys_errno;
};

__attribute__((noreturn)) static void fail(const char* step, s64 rc) {
  struct failure f;
  memset(&f, 0, sizeof f);
  for (int i = 0; step[i] && i < 55; ++i) f.step[i] = step[i];
  f.sys_errno = rc < 0 ? (int)-rc : EINVAL;
  sys3(SYS_write, SPECULA_LAUNCH_REPORT_FD, &f, sizeof f);
  sys1(SYS_exit_group, 127);
  __builtin_unreachable();
}

static void check(s64 rc, const char* step) {
  if (rc < 0) fail(step, rc);
}

static unsigned char plan_bytes[SPECULA_LAUNCH_MAX_BYTES] __attribute__((aligned(16)));

/* Offsets must name a NUL-terminated string inside the plan. */
static const char* str_at(const struct specula_launch_plan* p, uint32_t off) {
  if (off < sizeof *p || off >= p->total_bytes) fail("plan: string offset", -EINVAL);
  for (uint32_t i = off; i < p->total_bytes; ++i) {
    if (plan_bytes[i] == 0) return (const char*)plan_bytes + off;
  }
  fail("plan: unterminated string", -EINVAL);
}

struct sock_filter_ {
  unsigned short code;
  unsigned char jt, jf;
  unsigned int k;
};
struct sock_fprog_ {
  unsigned short len;
  struct sock_filter_* filter;
};

struct clone_args_ {
  u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

struct rlimit_ {
  u64 cur, max;
};

struct cap_header_ {
  unsigned int version;
  int pid;
};
struct cap_data_ {
  unsigned int effective, permitted, inheritable;
};

struct iovec_ {
  void* base;
  u64 len;
};
struct msghdr_ {
  void* name;
  int namelen;
  struct iovec_* iov;
  u64 iovlen;
  void* control;
  u64 controllen;
  int flags;
};
struct cmsghdr_ {
  u64 len;
  int level;
  int type;
};

static void send_fd(int sock, int fd) {
  char byte = 'L';
  struct iovec_ iov = {&byte, 1};
  u64 ctrl[(sizeof(struct cmsghdr_) + sizeof(int) + 7) / 8 + 1];
  memset(ctrl, 0, sizeof ctrl);
  struct cmsghdr_* c = (struct cmsghdr_*)ctrl;
  c->len = sizeof(struct cmsghdr_) + sizeof(int);
  c->level = SOL_SOCKET;
  c->type = SCM_RIGHTS;
  memcpy((char*)ctrl + sizeof(struct cmsghdr_), &fd, sizeof fd);
  struct msghdr_ m;
  memset(&m, 0, sizeof m);
  m.iov = &iov;
  m.iovlen = 1;
  m.control = ctrl;
  m.controllen = sizeof(struct cmsghdr_) + 8; /* CMSG_SPACE(sizeof(int)) */
  if (sys3(SYS_sendmsg, sock, &m, MSG_NOSIGNAL) != 1) fail("send seccomp listener", -EINVAL);
}

static void drop_privileges(const struct specula_launch_plan* p) {
  for (int cap = 0; cap <= p->last_cap && cap < 64; ++cap) {
    if (p->cap_mask & (1UL << cap)) continue;
    s64 rc = sys2(SYS_prctl, PR_CAPBSET_DROP, cap);
    if (rc < 0 && rc != -EINVAL) fail("drop bounding capability", rc);
  }
  s64 rc = sys2(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
  if (rc < 0 && rc != -EINVAL) fail("clear ambient capabilities", rc);
  struct cap_header_ h = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  struct cap_data_ d[2];
  memset(d, 0, sizeof d);
  d[0].effective = d[0].permitted = (unsigned int)(p->cap_mask & 0xffffffffUL);
  d[1].effective = d[1].permitted = (unsigned int)(p->cap_mask >> 32);
  check(sys2(SYS_capset, &h, d), "capset");
  check(sys2(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1), "no_new_privs");
}

static void set_limits(const struct specula_launch_plan* p) {
  struct rlimit_ cur;
  check(sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, &cur), "getrlimit nofile");
  /* Without CAP_SYS_RESOURCE the hard limit can only go down. */
  u64 n = p->nofile < cur.max ? p->nofile : cur.max;
  struct rlimit_ nofile = {n, n}, core = {0, 0};
  check(sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, 0), "setrlimit nofile");
  check(sys4(SYS_prlimit64, 0, RLIMIT_CORE, &core, 0), "setrlimit core");
}

__attribute__((noreturn)) static void run_action(const struct specula_launch_plan* p) {
  /* The cgroup namespace, then the user namespace and the ids of its root,
   * only now: CLONE_INTO_CGROUP needed the host's uid 0 to write the
   * (host-owned) cgroup.procs, and a cgroup namespace CRIU restored belongs
   * to the host's user namespace. */
  check(sys2(SYS_setns, SPECULA_LAUNCH_INIT_PIDFD, CLONE_NEWCGROUP), "setns cgroup ns");
  if (p->user_namespace) {
    check(sys2(SYS_setns, SPECULA_LAUNCH_INIT_PIDFD, CLONE_NEWUSER), "setns user ns");
    check(sys2(SYS_setgroups, 0, 0), "setgroups");
    check(sys3(SYS_setresgid, 0, 0, 0), "setresgid 0");
    check(sys3(SYS_setresuid, 0, 0, 0), "setresuid 0");
  }
  /* Nothing of the runtime's outlives this point but the report pipe and
   * the listener socket, which close at exec. */
  sys1(SYS_close, SPECULA_LAUNCH_INIT_PIDFD);
  sys1(SYS_close, SPECULA_LAUNCH_CGROUP2_FD);
  sys1(SYS_close, SPECULA_LAUNCH_PID_FD);
  for (uint32_t i = 0; i < p->n_v1_cgroups; ++i) sys1(SYS_close, SPECULA_LAUNCH_FIRST_V1_FD + (int)i);
  check(sys1(SYS_setsid, 0), "setsid");
  s64 in = sys4(SYS_openat, AT_FDCWD, str_at(p, p->dev_null_off), O_RDONLY | O_CLOEXEC, 0);
  check(in, "open /dev/null");
  check(sys2(SYS_dup2, in, 0), "dup2 stdin");
  check(sys2(SYS_dup2, SPECULA_LAUNCH_STDOUT_FD, 1), "dup2 stdout");
  check(sys2(SYS_dup2, SPECULA_LAUNCH_STDERR_FD, 2), "dup2 stderr");
  check(sys1(SYS_chdir, "/"), "chdir /");
  set_limits(p);
  drop_privileges(p);
  check(sys3(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC), "close_range");
  if (p->seccomp_len > 0) {
    struct sock_fprog_ prog = {(unsigned short)p->seccomp_len, (struct sock_filter_*)(plan_bytes + p->seccomp_off)};
    s64 fd = sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->has_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0,
                  &prog);
    check(fd, "install seccomp filter");
    if (p->has_listener) {
      send_fd(SPECULA_LAUNCH_LISTENER_FD, (int)fd);
      sys1(SYS_close, fd);
    }
  }
  const char* argv[SPECULA_LAUNCH_MAX_ARGS + 1];
  const char* envp[SPECULA_LAUNCH_MAX_ARGS + 1];
  for (uint32_t i = 0; i < p->argc; ++i) argv[i] = str_at(p, p->argv_off[i]);
  argv[p->argc] = 0;
  for (uint32_t i = 0; i < p->envc; ++i) envp[i] = str_at(p, p->envp_off[i]);
  envp[p->envc] = 0;
  s64 rc = sys3(SYS_execve, str_at(p, p->exe_off), argv, envp);
  fail("exec bash", rc);
}

static void launch(void) {
  check(sys2(SYS_prctl, PR_SET_DUMPABLE, 0), "prctl non-dumpable");
  u64 got = 0;
  for (;;) {
    s64 n = sys3(SYS_read, SPECULA_LAUNCH_PLAN_FD, plan_bytes + got, sizeof plan_bytes - got);
    check(n, "read plan");
    if (n == 0) break;
    got += (u64)n;
    if (got == sizeof plan_bytes) fail("plan too large", -EINVAL);
  }
  sys1(SYS_close, SPECULA_LAUNCH_PLAN_FD);
  const struct specula_launch_plan* p = (const struct specula_launch_plan*)plan_bytes;
  if (got < sizeof *p || p->magic != SPECULA_LAUNCH_MAGIC || p->version != SPECULA_LAUNCH_VERSION ||
      p->total_bytes != got || p->argc == 0 || p->argc > SPECULA_LAUNCH_MAX_ARGS ||
      p->envc > SPECULA_LAUNCH_MAX_ARGS || p->n_v1_cgroups > SPECULA_LAUNCH_MAX_V1_CGROUPS ||
      p->seccomp_off > got || (u64)p->seccomp_len * 8 > got - p->seccomp_off) {
    fail("plan: bad header", -EINVAL);
  }
  for (uint32_t i = 0; i < p->n_v1_cgroups; ++i) {
    check(sys3(SYS_write, SPECULA_LAUNCH_FIRST_V1_FD + (int)i, "0", 1), "join cgroup");
  }
  /* The cgroup namespace comes last (in the action itself):
   * CLONE_INTO_CGROUP checks the target against the caller's cgroup ns. */
  check(sys2(SYS_setns, SPECULA_LAUNCH_INIT_PIDFD, p->setns_flags), "setns into sandbox");
  struct clone_args_ a;
  memset(&a, 0, sizeof a);
  a.flags = CLONE_PARENT | CLONE_INTO_CGROUP;
  a.cgroup = SPECULA_LAUNCH_CGROUP2_FD;
  s64 child = sys2(SYS_clone3, &a, sizeof a);
  check(child, "clone action");
  if (child == 0) run_action(p);
  int pid = (int)child;
  sys3(SYS_write, SPECULA_LAUNCH_PID_FD, &pid, sizeof pid);
  sys1(SYS_exit_group, 0);
}

void _start(void) {
  launch();
  for (;;) {
  }
}
