/* pid 1 of a sandbox: reaps orphans, forever. Nothing else (it runs under
 * the sandbox's seccomp filter, installed before its exec).
 *
 * Freestanding (no libc, static, no dynamic loader) on purpose: the runtime
 * copies it onto the sandbox's own tmpfs and execs it there, so every page
 * it maps lives on a mount inside the sandbox and CRIU can dump it. A forked
 * copy of the runtime would map the runtime's binary and libraries from the
 * host's root mount, which is not part of the sandbox's mount namespace.
 * x86_64 only (raw syscall numbers). */

#define SYS_write 1
#define SYS_close 3
#define SYS_prctl 157
#define SYS_capset 126
#define LINUX_CAPABILITY_VERSION_3 0x20080522
#define PR_SET_DUMPABLE 4
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_rt_sigtimedwait 128
#define SYS_execve 59
#define SIGUSR1 10
#define SIG_BLOCK 0
#define WNOHANG 1
#define SIGCHLD 17

static long sys4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ __volatile__("syscall"
                       : "=a"(ret)
                       : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                       : "rcx", "r11", "memory");
  return ret;
}

/* siginfo_t as far as it is read here (x86_64 layout of the rt fields). */
struct siginfo_head {
  int si_signo, si_errno, si_code, pad;
  int si_pid;
  unsigned int si_uid;
  unsigned long si_value;
  char rest[128 - 32];
};

static void reexec(unsigned long nonce) {
  /* argv[1] = the runtime's nonce in hex: how it sees (in /proc/<pid>/cmdline)
   * that this init has exec'd again. */
  static char hex[17];
  for (int i = 15; i >= 0; --i) {
    hex[i] = "0123456789abcdef"[nonce & 15];
    nonce >>= 4;
  }
  hex[16] = 0;
  char* argv[] = {(char*)"specula-init", hex, 0};
  char* envp[] = {0};
  sys4(SYS_execve, (long)"/proc/self/exe", (long)argv, (long)envp, 0);
}

void _start(void) {
  /* Non-dumpable before anything can see us (exec made us dumpable again):
   * no process of the sandbox may ptrace or pidfd_getfd its init. Only then
   * tell the runtime (fd 3) that the sandbox may be entered. CRIU keeps the
   * flag across a dump and restore. */
  sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
  /* Reaping needs no capability: drop all of them (effective, permitted,
   * inheritable), so even a process that got hold of init could not use
   * CAP_MKNOD or any other. Actions get their caps from the launcher, not
   * from init. */
  struct {
    unsigned int version;
    int pid;
  } hdr = {LINUX_CAPABILITY_VERSION_3, 0};
  unsigned int none[6] = {0, 0, 0, 0, 0, 0};
  sys4(SYS_capset, (long)&hdr, (long)none, 0, 0);
  sys4(SYS_write, 3, (long)"R", 1, 0);  /* EBADF after a re-exec: harmless */
  sys4(SYS_close, 3, 0, 0, 0);
  /* SIGCHLD stays blocked, so a child exiting between the reaping loop and
   * the wait below is not lost: it stays pending. SIGUSR1 too: the runtime
   * sends it (with a nonce) to a CRIU-restored init, which then execs
   * itself again. A restored init's memory was made by CRIU in the host's
   * user namespace, and a non-dumpable process is guarded by the namespace
   * its memory belongs to: there, the next CRIU dump (which inspects the
   * tree from inside the sandbox's user namespace) is refused. After the
   * exec, init is exactly as a fresh one. Anyone may send it: a re-exec
   * grants nothing. */
  unsigned long set = (1UL << (SIGCHLD - 1)) | (1UL << (SIGUSR1 - 1));
  sys4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof(set));
  struct siginfo_head info;
  for (;;) {
    while (sys4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
    }
    long sig = sys4(SYS_rt_sigtimedwait, (long)&set, (long)&info, 0, sizeof(set));
    if (sig == SIGUSR1) reexec(info.si_value);
  }
}
