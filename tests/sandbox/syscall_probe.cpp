// Calls each syscall the sandbox's seccomp baseline denies, directly via
// syscall(2) with harmless arguments, and prints "<name> <errno>" per line
// (0 = succeeded). The integration test runs it inside a sandbox (all must
// be denied) and on the host (where most give a different answer, showing
// the denial comes from the filter, not from the arguments).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace {

void Report(const char* name, long rc) {
  std::printf("%s %d\n", name, rc < 0 ? errno : 0);
  if (rc >= 0 && std::string(name) == "userfaultfd") ::close(static_cast<int>(rc));
}

// 32-bit entry point (int $0x80), i386 getpid = 20. Returns -errno or pid.
long Int80Getpid() {
  long ret = 20;
  __asm__ __volatile__("int $0x80" : "+a"(ret) : : "memory", "cc");
  return ret;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tmp = argc > 1 ? argv[1] : "/tmp";
  Report("io_uring_setup", syscall(SYS_io_uring_setup, 1, nullptr));
  Report("io_uring_enter", syscall(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0));
  Report("io_uring_register", syscall(SYS_io_uring_register, -1, 0, nullptr, 0));
  Report("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
  Report("keyctl", syscall(SYS_keyctl, 0, -1, 0, 0, 0));
  Report("add_key", syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0));
  Report("request_key", syscall(SYS_request_key, nullptr, nullptr, nullptr, 0));
  Report("bpf", syscall(SYS_bpf, -1, nullptr, 0));
  Report("perf_event_open", syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0));
  Report("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0));
  Report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, 0));
  Report("init_module", syscall(SYS_init_module, nullptr, 0, nullptr));
  Report("finit_module", syscall(SYS_finit_module, -1, nullptr, 0));
  Report("delete_module", syscall(SYS_delete_module, nullptr, 0));
  Report("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, nullptr));
  Report("settimeofday", syscall(SYS_settimeofday, nullptr, nullptr));
  Report("adjtimex", syscall(SYS_adjtimex, nullptr));
  Report("clock_adjtime", syscall(SYS_clock_adjtime, CLOCK_REALTIME, nullptr));
  Report("swapon", syscall(SYS_swapon, nullptr, 0));
  Report("swapoff", syscall(SYS_swapoff, nullptr));
  Report("acct", syscall(SYS_acct, nullptr));
  Report("quotactl", syscall(SYS_quotactl, 0, nullptr, 0, nullptr));
  Report("quotactl_fd", syscall(SYS_quotactl_fd, -1, 0, 0, nullptr));
  Report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, nullptr, 0));
  Report("mount", syscall(SYS_mount, nullptr, nullptr, nullptr, 0, nullptr));
  Report("fsopen", syscall(SYS_fsopen, nullptr, 0));
  Report("fsconfig", syscall(SYS_fsconfig, -1, 0, nullptr, nullptr, 0));
  Report("fsmount", syscall(SYS_fsmount, -1, 0, 0));
  Report("fspick", syscall(SYS_fspick, -1, nullptr, 0));
  Report("move_mount", syscall(SYS_move_mount, -1, nullptr, -1, nullptr, 0));
  Report("open_tree", syscall(SYS_open_tree, -1, nullptr, 0));
  Report("mount_setattr", syscall(SYS_mount_setattr, -1, nullptr, 0, nullptr, 0));
  const std::string node = tmp + "/specula-probe-node-" + std::to_string(getpid());
  long rc = syscall(SYS_mknod, node.c_str(), S_IFCHR | 0600, makedev(1, 3));
  Report("mknod_chr", rc);
  if (rc == 0) ::unlink(node.c_str());
  rc = syscall(SYS_mknodat, AT_FDCWD, node.c_str(), S_IFBLK | 0600, makedev(7, 0));
  Report("mknodat_blk", rc);
  if (rc == 0) ::unlink(node.c_str());
  // A FIFO is not a device: must stay allowed.
  rc = syscall(SYS_mknodat, AT_FDCWD, node.c_str(), S_IFIFO | 0600, 0);
  Report("mknodat_fifo", rc);
  if (rc == 0) ::unlink(node.c_str());
  char c = 'x';
  Report("ioctl_tiocsti", syscall(SYS_ioctl, 0, TIOCSTI, &c));
  Report("ioctl_tioclinux", syscall(SYS_ioctl, 0, TIOCLINUX, &c));
  Report("clone3", syscall(SYS_clone3, nullptr, 0));
  Report("x32_getpid", syscall(0x40000000L | SYS_getpid));
  long r80 = Int80Getpid();
  if (r80 < 0) errno = static_cast<int>(-r80);
  Report("i386_getpid", r80 < 0 ? -1 : 0);
  // Last: on the host these succeed and would change the namespace.
  long child = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (child == 0) _exit(0);
  Report("clone_newuser", child);
  if (child > 0) waitpid(static_cast<pid_t>(child), nullptr, 0);
  Report("unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER));
  std::fflush(stdout);
  return 0;
}
