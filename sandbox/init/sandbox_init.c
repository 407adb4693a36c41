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
#define PR_SET_DUMPABLE 4
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_rt_sigtimedwait 128
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

void _start(void) {
  /* Non-dumpable before anything can see us (exec made us dumpable again):
   * no process of the sandbox may ptrace or pidfd_getfd its init. Only then
   * tell the runtime (fd 3) that the sandbox may be entered. CRIU keeps the
   * flag across a dump and restore. */
  sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0);
  sys4(SYS_write, 3, (long)"R", 1, 0);
  sys4(SYS_close, 3, 0, 0, 0);
  /* SIGCHLD stays blocked, so a child exiting between the reaping loop and
   * the wait below is not lost: it stays pending. */
  unsigned long chld = 1UL << (SIGCHLD - 1);
  sys4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&chld, 0, sizeof(chld));
  for (;;) {
    while (sys4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
    }
    sys4(SYS_rt_sigtimedwait, (long)&chld, 0, 0, sizeof(chld));
  }
}
