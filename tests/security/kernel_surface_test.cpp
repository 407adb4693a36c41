// The kernel's attack surface from a branch (issue 12 "Tests": the runc,
// crun and flatpak CVE classes): mount and namespace syscalls, the
// syscalls a container has no business making (bpf, perf, kexec, modules,
// keys, userfaultfd), the classic escapes (shocker, release_agent,
// core_pattern, uevent_helper, TIOCSTI, /proc/<pid>/mem, chroot), and the
// OCI masked paths. Default policy, a session over the host's /. Each test
// asserts the attack failed; the fixture's TearDown checks the host (the
// daemon's binary, a canary, dmesg, the socket); tests that target one host
// file compare it too.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using KernelSurface = SecurityTest;

std::string ReadHost(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `what` was attempted and refused by the kernel or the filter: an errno
// that means "not allowed" or "not there", never EFAULT/EINVAL (which would
// mean the call got past the filter and only our arguments stopped it).
void ExpectRefused(const RunOut& r, const std::string& what) {
  std::regex line("(^|\n)BLOCKED " + what + " (EPERM|EACCES|ENOSYS|EROFS|ENOENT|ENOTTY|EIO|ESRCH)\\b");
  EXPECT_TRUE(std::regex_search(r.out, line)) << what << " was not refused as expected:\n" << r.out << r.err;
  EXPECT_EQ(r.out.find("ESCAPED " + what + " "), std::string::npos) << r.out;
}

// ---- mounts and namespaces -------------------------------------------

// Mount class (CVE-2022-0185 needed a mount of a new fs in a userns; the
// runc "mount over /proc" family): no mount, remount, umount, new mount
// API or pivot_root from inside.
TEST_F(KernelSurface, MountClass_NoMountUmountOrPivotRoot) {
  RunOut r = Run(Attack("mount"));
  ExpectAllBlocked(r, "mount syscalls");
  for (const char* w : {"mount-tmpfs", "mount-proc", "mount-cgroup2", "mount-bind-root", "remount-root-rw",
                        "umount-proc", "fsopen", "open_tree", "pivot_root"}) {
    ExpectRefused(r, w);
  }
}

// Namespace class (CVE-2022-0185, CVE-2023-32233 and most container escapes
// since 2020 start with an unprivileged user namespace): no new namespace,
// no setns into another one.
TEST_F(KernelSurface, NamespaceClass_NoUnshareCloneNewuserOrSetns) {
  RunOut r = Run(Attack("unshare"));
  ExpectAllBlocked(r, "namespace syscalls");
  for (const char* w : {"unshare-user", "unshare-mount", "unshare-user-mount", "clone-newuser"}) ExpectRefused(r, w);
}

// CVE-2022-0492: a v1 cgroup's release_agent is run by the kernel as host
// root; mounting cgroupfs (directly or in a fresh userns) must fail and the
// host's release_agent files must not be writable.
TEST_F(KernelSurface, CVE_2022_0492_ReleaseAgentUnreachable) {
  std::string before = ReadHost("/sys/fs/cgroup/memory/release_agent");
  RunOut r = Run(Attack("release-agent"));
  ExpectAllBlocked(r, "release_agent");
  ExpectRefused(r, "mount-cgroup-v1");
  ExpectRefused(r, "open-host-release_agent");
  EXPECT_EQ(ReadHost("/sys/fs/cgroup/memory/release_agent"), before);
}

// CVE-2014-3519 "shocker": open_by_handle_at with a guessed handle opens a
// file of the host's filesystem by inode, past every mount.
TEST_F(KernelSurface, CVE_2014_3519_ShockerOpenByHandleAtRefused) {
  RunOut r = Run(Attack("open-by-handle"));
  ExpectAllBlocked(r, "open_by_handle_at");
  ExpectRefused(r, "open_by_handle_at");
}

// Chroot escape class: chroot plus fchdir(..) walks out of a chroot; inside
// a pivot_root'ed mount namespace it must still find nothing of the host's
// runtime state (its mask, an empty directory, may show; what it holds not).
TEST_F(KernelSurface, ChrootEscapeClass_DoubleChrootFindsNoRuntimeState) {
  const std::string& sd = daemon_->state_dir();
  RunOut r = Run(Attack("chroot-escape " + sd + "/specula.db " + sd + "/layers.img " + sd + "/images"));
  ExpectAllBlocked(r, "chroot escape");
  EXPECT_EQ(r.out.find("ESCAPED sees"), std::string::npos) << r.out;
}

// ---- syscalls a sandbox never needs ----------------------------------

// eBPF class (CVE-2021-3490, CVE-2021-31440, CVE-2023-2163: verifier bugs
// reached through bpf()).
TEST_F(KernelSurface, EbpfClass_BpfSyscallRefused) {
  ExpectRefused(Run(Attack("kernel bpf")), "bpf");
}

// perf class (CVE-2013-2094, CVE-2023-6931: perf_event_open bugs).
TEST_F(KernelSurface, PerfClass_PerfEventOpenRefused) {
  ExpectRefused(Run(Attack("kernel perf_event_open")), "perf_event_open");
}

// Kernel replacement: kexec_load and kexec_file_load are denied outright.
TEST_F(KernelSurface, KexecClass_Refused) {
  ExpectRefused(Run(Attack("kernel kexec_load")), "kexec_load");
}

// Keyring class (CVE-2016-0728: keyctl refcount overflow; keys are not
// namespaced, so a sandbox could read the host's).
TEST_F(KernelSurface, KeyringClass_KeyctlRefused) {
  ExpectRefused(Run(Attack("kernel keyctl")), "keyctl");
}

// userfaultfd class (the primitive behind most kernel-race exploits, e.g.
// CVE-2021-22555's heap spray).
TEST_F(KernelSurface, UserfaultfdClass_Refused) {
  ExpectRefused(Run(Attack("kernel userfaultfd")), "userfaultfd");
}

// io_uring class (CVE-2022-29582, CVE-2023-2598; Google disabled it in
// production for this): not reachable.
TEST_F(KernelSurface, IoUringClass_Refused) {
  ExpectRefused(Run(Attack("kernel io_uring_setup")), "io_uring_setup");
}

// Host-global state the policy denies: reboot, acct, the kernel log,
// port I/O.
TEST_F(KernelSurface, HostGlobalStateClass_RebootAcctSyslogIoplRefused) {
  RunOut r = Run(Attack("kernel reboot acct syslog-clear iopl ioperm"));
  for (const char* w : {"reboot", "acct", "syslog-clear", "iopl", "ioperm"}) ExpectRefused(r, w);
}

// Legacy x86 segments: writing an LDT entry (modify_ldt) is a kernel
// surface with its own history of bugs (CVE-2017-17053, CVE-2015-5157)
// that nothing an agent runs needs; Docker's default profile denies it too.
// It was allowed (an audit, 2026-12-07).
TEST_F(KernelSurface, LegacyAbiClass_ModifyLdtRefused) {
  ExpectRefused(Run(Attack("kernel modify_ldt")), "modify_ldt");
}

// Execution domains that switch off the process's own hardening
// (READ_IMPLIES_EXEC: data executable; ADDR_NO_RANDOMIZE: no ASLR for what
// it execs next; MMAP_PAGE_ZERO: a mapped NULL page), also with bit 31 set
// or above 32 bits; the NUMA calls Docker gives only to CAP_SYS_NICE
// (move_pages and migrate_pages act on other processes' pages); and
// memfd_secret, whose memory neither ptrace nor CRIU can read, so a
// branch holding it could not be checkpointed. All were allowed (an
// audit, 2026-12-08: docs/sandbox.md listed them as looser than Docker).
TEST_F(KernelSurface, LegacyAbiClass_HardeningPersonalitiesAndNumaCallsRefused) {
  RunOut r = Run(Attack(
      "kernel personality-read-implies-exec personality-no-randomize personality-page-zero personality-bit31 "
      "personality-high set_mempolicy mbind move_pages migrate_pages memfd_secret"));
  for (const char* w : {"personality-read-implies-exec", "personality-no-randomize", "personality-page-zero",
                        "personality-bit31", "personality-high", "set_mempolicy", "mbind", "move_pages",
                        "migrate_pages"}) {
    ExpectRefused(r, w);
  }
  if (r.out.find(" memfd_secret ") != std::string::npos) ExpectRefused(r, "memfd_secret");
  // What tools use stays: the query (gdb, setarch), PER_LINUX32, UNAME26,
  // and back to PER_LINUX.
  RunOut ok = Run(Attack("persona-allowed"));
  for (const char* w : {"query", "linux32", "uname26", "linux"}) {
    EXPECT_NE(ok.out.find(std::string("ALLOWED ") + w + "\n"), std::string::npos) << w << ":\n" << ok.out << ok.err;
  }
}

// Speculates `attack kernel <call>` (a call the policy defers: it changes
// the whole host), waits until the branch is blocked on it, and discards
// the branch: the call never ran.
void ExpectDeferredNeverRuns(SecurityTest& t, const std::string& call) {
  std::string b = t.Spec(t.Attack("kernel " + call));
  ASSERT_FALSE(b.empty());
  Json shown;
  for (int i = 0; i < 600; ++i) {
    auto r = t.Call("branch.show", {{"branch", b}});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    shown = *r;
    if (shown.value("state", "") == "blocked" || shown.value("state", "") == "done") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(shown.value("state", ""), "blocked") << shown.dump();
  ASSERT_TRUE(shown.contains("deferred") && !shown["deferred"].empty()) << shown.dump();
  EXPECT_EQ(shown["deferred"][0]["syscall"], call) << shown.dump();
  t.Abort();
  Json end = t.WaitBranch(b);
  EXPECT_EQ(end.value("state", ""), "discarded") << end.dump();
  if (end.contains("result") && end["result"].is_object()) {
    std::string out = end["result"].value("stdout", "");
    EXPECT_EQ(out.find("ESCAPED"), std::string::npos) << out;
  }
}

// Defer class (host clock): clock_settime blocks in a speculative branch
// and never runs when the branch is discarded.
TEST_F(KernelSurface, DeferClass_ClockSettimeNeverRunsInADiscardedBranch) {
  ExpectDeferredNeverRuns(*this, "clock_settime");
}

// Defer class (modules, swap): init_module and swapon block likewise.
TEST_F(KernelSurface, DeferClass_ModuleLoadAndSwaponNeverRunInADiscardedBranch) {
  std::string swaps = ReadHost("/proc/swaps");
  ExpectDeferredNeverRuns(*this, "init_module");
  ExpectDeferredNeverRuns(*this, "swapon");
  EXPECT_EQ(ReadHost("/proc/swaps"), swaps);
}

// ---- processes --------------------------------------------------------

// /proc/<pid>/mem class (CVE-2012-0056 "mempodipper"; runc's init exposed
// the same way): init's memory, environment and fds are unreachable.
TEST_F(KernelSurface, ProcPidMemClass_InitMemoryUnreachable) {
  RunOut r = Run(Attack("proc-mem"));
  ExpectAllBlocked(r, "init's memory");
  for (const char* w : {"open-init-mem", "process_vm_readv-init", "process_vm_writev-init", "open-init-environ"}) {
    EXPECT_EQ(r.out.find(std::string("ESCAPED ") + w), std::string::npos) << r.out;
  }
}

// PID namespace class: no host process is visible in /proc (the daemon, its
// pid, anything that runs as host root outside).
TEST_F(KernelSurface, PidNamespaceClass_NoHostProcessVisible) {
  RunOut r = Run("for c in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $c; echo; done; ls -d /proc/[0-9]* | wc -l");
  EXPECT_EQ(r.out.find("speculad"), std::string::npos) << r.out;
  RunOut p = Run("test -e /proc/" + std::to_string(daemon_->pid()) + "/cmdline && tr '\\0' ' ' < /proc/" +
                 std::to_string(daemon_->pid()) + "/cmdline; true");
  EXPECT_EQ(p.out.find("speculad"), std::string::npos) << p.out;
}

// /proc symlink class (CVE-2019-16884, CVE-2019-19921: /proc tricks that
// reach the host's root): /proc/<pid>/root of every visible process leads
// to the sandbox's own root, where the runtime's state is masked.
TEST_F(KernelSurface, ProcSymlinkClass_ProcPidRootReachesNoRuntimeState) {
  RunOut r = Run(Attack("proc-root " + daemon_->state_dir() + "/specula.db " + daemon_->state_dir() + "/layers.img"));
  ExpectAllBlocked(r, "/proc/<pid>/root");
}

// CVE-2019-5736: /proc/<pid>/exe of every process in the branch (init, the
// shell, the launcher) cannot be opened for writing, directly or through a
// reopen of an O_PATH fd; the daemon's and init's binaries on the host are
// unchanged (TearDown hashes speculad).
TEST_F(KernelSurface, CVE_2019_5736_ProcExeCannotBeRewritten) {
  RunOut r = Run(Attack("exe-overwrite"));
  ExpectAllBlocked(r, "/proc/<pid>/exe");
  EXPECT_EQ(r.out.find("speculad"), std::string::npos) << "a process in the branch runs the daemon's binary:\n"
                                                        << r.out;
}

// CVE-2024-21626 (runc "leaky vessels"): no process visible in the branch
// holds an fd or a cwd/root of the runtime's (state dir, database, socket,
// the daemon's binary), and no directory fd walks out to another root.
TEST_F(KernelSurface, CVE_2024_21626_NoRuntimeFdOrDirectoryInAnyProcess) {
  RunOut r = Run(Attack("fds"));
  ExpectAllBlocked(r, "fd scan");
  std::istringstream in(r.out);
  std::string line;
  int fds = 0;
  while (std::getline(in, line)) {
    if (line.rfind("FD ", 0) != 0) continue;
    ++fds;
    EXPECT_EQ(line.find(daemon_->state_dir()), std::string::npos) << line;
    EXPECT_EQ(line.find("specula.db"), std::string::npos) << line;
    EXPECT_EQ(line.find("speculad"), std::string::npos) << line;
    EXPECT_EQ(line.find("/sys/fs/cgroup"), std::string::npos) << line;
  }
  EXPECT_GT(fds, 0) << r.out;
}

// TIOCSTI class (CVE-2016-9016 firejail, CVE-2017-5226 bubblewrap,
// CVE-2016-7545 SELinux sandbox): pushing characters into a terminal's
// input queue. The branch has no controlling terminal of the host's; on a
// pty it opens itself the ioctl is refused by the filter.
TEST_F(KernelSurface, CVE_2016_9016_TiocstiRefused) {
  RunOut r = Run(Attack("tiocsti"));
  ExpectAllBlocked(r, "TIOCSTI");
  EXPECT_EQ(r.out.find("ESCAPED tiocsti"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ESCAPED tioclinux"), std::string::npos) << r.out;
}

// ---- kernel knobs and masked paths -----------------------------------

// core_pattern class (the "|/path" core handler runs as host root; a known
// escape from privileged containers): /proc/sys is read-only.
TEST_F(KernelSurface, CorePatternClass_ProcSysNotWritable) {
  std::string before = ReadHost("/proc/sys/kernel/core_pattern");
  RunOut r = Run(Attack("write /proc/sys/kernel/core_pattern '|/tmp/pwn'"));
  ExpectRefused(r, "/proc/sys/kernel/core_pattern");
  RunOut m = Run(Attack("write /proc/sys/kernel/modprobe /tmp/pwn"));
  ExpectRefused(m, "/proc/sys/kernel/modprobe");
  EXPECT_EQ(ReadHost("/proc/sys/kernel/core_pattern"), before);
}

// uevent_helper class (the kernel runs /sys/kernel/uevent_helper as root on
// every uevent): /sys is read-only.
TEST_F(KernelSurface, UeventHelperClass_SysNotWritable) {
  std::string before = ReadHost("/sys/kernel/uevent_helper");
  RunOut r = Run(Attack("write /sys/kernel/uevent_helper /tmp/pwn"));
  ExpectRefused(r, "/sys/kernel/uevent_helper");
  EXPECT_EQ(ReadHost("/sys/kernel/uevent_helper"), before);
}

// Masked path: /proc/sysrq-trigger (a write reboots, crashes or syncs the
// host). 'h' only prints help to the kernel log, which TearDown would not
// see: compare the log for sysrq lines here.
TEST_F(KernelSurface, MaskedPath_SysrqTriggerNotWritable) {
  std::string before = Dmesg();
  RunOut r = Run(Attack("write /proc/sysrq-trigger h"));
  EXPECT_EQ(r.out.find("ESCAPED"), std::string::npos) << r.out;
  std::string after = Dmesg();
  EXPECT_EQ(after.substr(std::min(before.size(), after.size())).find("sysrq"), std::string::npos) << after;
}

// Masked paths: kernel memory and kernel pointers (/proc/kcore,
// /proc/kallsyms) and the kernel log (/proc/kmsg).
TEST_F(KernelSurface, MaskedPath_KcoreKallsymsKmsgShowNothing) {
  RunOut r = Run(Attack("read /proc/kcore /proc/kallsyms /proc/kmsg"));
  ExpectAllBlocked(r, "kernel memory");
}

// Masked paths: /proc/keys (the host's keys are not namespaced), timers and
// scheduler state (/proc/timer_list, /proc/sched_debug: host pids and
// kernel addresses), /proc/latency_stats.
TEST_F(KernelSurface, MaskedPath_KeysTimerListSchedDebugShowNothing) {
  RunOut r = Run(Attack("read /proc/keys /proc/timer_list /proc/sched_debug"));
  ExpectAllBlocked(r, "/proc masked files");
}

// Masked paths under /sys: firmware tables (ACPI, EFI variables), debugfs,
// securityfs, powercap (CVE-2020-8694 "platypus" read energy counters).
TEST_F(KernelSurface, MaskedPath_SysFirmwareDebugSecurityPowercapShowNothing) {
  RunOut r = Run(Attack("read /sys/firmware /sys/kernel/debug /sys/kernel/security /sys/devices/virtual/powercap"));
  ExpectAllBlocked(r, "/sys masked dirs");
}

}  // namespace
}  // namespace specula::testing
