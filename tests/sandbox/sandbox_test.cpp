// Integration tests (root, real kernel): isolation, actions, shell state,
// seccomp baseline and defer, network, fds.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "common/spawn.h"
#include "common/unique_fd.h"
#include "sandbox/sandbox.h"
#include "sandbox_test_util.h"

namespace specula::sandbox {
namespace {

using namespace std::chrono_literals;
using testing::MakeSpec;
using testing::ScratchDirs;
using testing::UniqueName;

class SandboxTest : public testing::SandboxFixture {
 protected:
  SandboxTest() : SandboxFixture("sb") {}
};

TEST_F(SandboxTest, RunsCommandAndCapturesOutputSeparately) {
  Start();
  auto r = RunOk("echo out; echo err >&2; exit 7");
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.state_captured);
  auto sig = RunOk("kill -TERM $$");
  EXPECT_EQ(sig.exit_code, -1);
  EXPECT_EQ(sig.signal, SIGTERM);
}

// Every action runs as /bin/bash -c inside the sandbox's root. A session
// over a tree without bash (an empty directory, a minimal image) started,
// and each action failed with "start action: exec bash: No such file or
// directory" and nothing else: the error now says what is missing and what
// to do.
TEST_F(SandboxTest, ARootWithoutBashSaysSoWhenAnActionCannotStart) {
  ScratchDirs empty(name_ + "-empty-base");
  spec_.base = empty.upper();
  Start();
  auto r = sb_->Run("true", std::chrono::seconds(20));
  ASSERT_FALSE(r.ok()) << "an action ran without /bin/bash: " << r->stdout_data;
  EXPECT_EQ(r.error().code(), Code::kNotFound) << r.error().ToString();
  EXPECT_EQ(r.error().sys_errno(), ENOENT) << r.error().ToString();
  EXPECT_NE(r.error().hint().find("/bin/bash"), std::string::npos) << r.error().ToString();
  // Gone before its base dir is.
  EXPECT_TRUE(sb_->Destroy().ok());
  sb_.reset();
}

// The action's io dir is writable by the sandbox's root, and the runtime
// reads the shell state the EXIT trap leaves there. A FIFO planted in its
// place (and the trap killed) blocked the runtime's open forever: the run
// never returned, and Destroy waited for it (an audit, 2026-12-07). A state
// that is not a regular file is not read; the run returns.
TEST_F(SandboxTest, AFifoInPlaceOfTheStateFileDoesNotHangTheRun) {
  Start();
  sandbox::Sandbox* box = sb_.get();
  auto run = std::async(std::launch::async, [box] {
    return box->Run("for d in /run/.specula/a*/; do rm -f \"${d}state\"; mkfifo \"${d}state\"; done; "
                    "echo planted; kill -9 $$",
                    std::chrono::seconds(20));
  });
  if (run.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the run hangs on the planted FIFO";
    std::abort();  // the stuck run would keep the sandbox (and this process) up forever
  }
  auto r = run.get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "planted\n") << r->stderr_data;
  EXPECT_FALSE(r->state_captured);
  // The sandbox still works, and its next action is unaffected.
  auto next = RunOk("echo again");
  EXPECT_EQ(next.stdout_data, "again\n");
}

TEST_F(SandboxTest, WriteInsideIsInvisibleOnHost) {
  Start();
  const std::string file = "/tmp/specula-inside-" + name_;
  auto r = RunOk("echo data > " + file + " && cat " + file);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "data\n");
  EXPECT_FALSE(std::filesystem::exists(file)) << "write escaped to the host";
  EXPECT_TRUE(std::filesystem::exists(dirs_->upper() + file)) << "write not in the upper dir";
  // The merged root on the host shows the sandbox's view.
  EXPECT_TRUE(std::filesystem::exists(sb_->root() + file));
}

// Destroy must not syncfs the whole store (overlayfs does on the last
// unmount unless volatile): the branch overlay is volatile, and what the
// action wrote is still all in the upper dir after the unmount.
TEST_F(SandboxTest, BranchOverlayIsVolatileAndItsUpperStaysWhole) {
  Start();
  auto r = RunOk("head -c 300000 /dev/zero | tr '\\0' x > /tmp/kept-" + name_);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
  std::string options;
  std::istringstream mi(testing::ReadText("/proc/self/mountinfo"));
  for (std::string line; std::getline(mi, line);) {
    std::istringstream words(line);
    std::string id, parent, dev, root, mountpoint;
    words >> id >> parent >> dev >> root >> mountpoint;
    if (mountpoint == sb_->root()) options = line.substr(line.find(" - "));
  }
  ASSERT_FALSE(options.empty()) << "no mount at " << sb_->root();
  EXPECT_NE(options.find("volatile"), std::string::npos) << options;
  ASSERT_TRUE(sb_->Destroy().ok());
  sb_.reset();
  EXPECT_EQ(std::filesystem::file_size(dirs_->upper() + "/tmp/kept-" + name_), 300000u);
}

TEST_F(SandboxTest, KernelKnobsAndSysAreReadOnly) {
  Start();
  auto r = RunOk("echo 1 > /proc/sys/kernel/core_uses_pid");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_data.find("Read-only file system"), std::string::npos) << r.stderr_data;
  r = RunOk("echo 1 > /proc/sys/vm/drop_caches");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_data.find("Read-only file system"), std::string::npos) << r.stderr_data;
  if (std::filesystem::exists("/proc/sysrq-trigger")) {  // CONFIG_MAGIC_SYSRQ
    r = RunOk("echo h > /proc/sysrq-trigger");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.stderr_data.find("Read-only file system"), std::string::npos) << r.stderr_data;
  }
  r = RunOk("echo 1 > /sys/kernel/mm/ksm/run");
  EXPECT_NE(r.exit_code, 0);
  // But /proc itself works, with the sandbox's own pid namespace.
  r = RunOk("cat /proc/1/status | grep -c ^Pid; hostname");
  EXPECT_EQ(r.stdout_data, "1\nspecula\n");
}

TEST_F(SandboxTest, MinimalDevAndOwnDevpts) {
  Start();
  auto r = RunOk("ls /dev | sort | tr '\\n' ' '; echo; head -c 4 /dev/zero | wc -c; "
                 "echo x > /dev/null && echo null-ok; test -c /dev/pts/ptmx && echo ptmx-ok; "
                 "test -e /dev/sda || echo no-disks");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data,
            "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero \n4\nnull-ok\nptmx-ok\nno-disks\n");
}

TEST_F(SandboxTest, HostRunSocketsAreUnreachable) {
  // A listening Unix socket under the host's /run, like docker.sock.
  const std::string path = "/run/specula-test-" + name_ + ".sock";
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(s.get(), 1), 0);
  Start();
  auto r = RunOk("ls -A /run; test -S " + path + " && echo visible || echo hidden; "
                 "test -S /var" + path + " && echo visible || echo hidden");
  ::unlink(path.c_str());
  EXPECT_EQ(r.stdout_data, ".specula\nhidden\nhidden\n");
}

TEST_F(SandboxTest, OnlyLoopbackNetwork) {
  Start();
  // Loopback is up (refused, not unreachable); everything else is unreachable.
  auto r = RunOk("exec 3<>/dev/tcp/127.0.0.1/1 && echo connected; exec 3<>/dev/tcp/10.1.2.3/80 && echo connected");
  EXPECT_EQ(r.stdout_data, "");
  EXPECT_NE(r.stderr_data.find("Connection refused"), std::string::npos) << r.stderr_data;
  EXPECT_NE(r.stderr_data.find("Network is unreachable"), std::string::npos) << r.stderr_data;
  r = RunOk("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(r.stdout_data, "lo\n");
}

TEST_F(SandboxTest, NetworkNoneLeavesLoopbackDown) {
  spec_.policy.network.mode = policy::NetworkMode::kNone;
  Start();
  auto r = RunOk("exec 3<>/dev/tcp/127.0.0.1/1");
  EXPECT_NE(r.stderr_data.find("Network is unreachable"), std::string::npos) << r.stderr_data;
}

TEST_F(SandboxTest, NoRuntimeFdInside) {
  // A non-CLOEXEC fd in the runtime must not leak either.
  UniqueFd leak(::open("/etc/hostname", O_RDONLY));
  ASSERT_TRUE(leak.valid());
  Start();
  // Init's fds, as the host sees them: stdio on the sandbox's /dev/null only.
  int init_fds = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(sb_->init_pid()) + "/fd")) {
    ++init_fds;
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    EXPECT_TRUE(e.path().filename() == "0" || e.path().filename() == "1" || e.path().filename() == "2")
        << e.path() << " -> " << target;
    EXPECT_EQ(target, "/dev/null") << e.path();
  }
  EXPECT_EQ(init_fds, 3);
  auto r = RunOk("cd /proc/self/fd && for f in *; do echo \"$f $(readlink $f)\"; done; "
                 "cd /proc/1/fd && for f in *; do echo \"init $f $(readlink $f)\"; done");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  std::istringstream lines(r.stdout_data);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    std::istringstream w(line);
    std::string a, b, c;
    w >> a >> b >> c;
    if (a == "init") {
      EXPECT_TRUE(b == "0" || b == "1" || b == "2") << line;
      // Init is non-dumpable: an action cannot even read where its fds point.
      EXPECT_EQ(c, "") << line;
    } else {
      // The subshell's own fds: stdio, bash's script fd 255, and the dir fd of the glob (3).
      EXPECT_TRUE(a == "0" || a == "1" || a == "2" || a == "3" || a == "255") << line;
      if (a == "1" || a == "2") {
        EXPECT_EQ(b.rfind("/run/.specula/", 0), 0u) << line;
      }
    }
  }
  EXPECT_GE(count, 6);
}

TEST_F(SandboxTest, ShellStateCarriesBetweenActionsAndIntoNewSandbox) {
  Start();
  auto r = RunOk("cd /tmp && export A=1 && B=2 && f() { echo fn-$1; } && alias ll='echo aliased' && "
                 "umask 077 && set -o pipefail");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  const std::string check = "echo $PWD $A $B $(umask); f x; ll; [[ -o pipefail ]] && echo pipefail; "
                            "bash -c 'echo child sees A=$A B=$B'";
  r = RunOk(check);
  EXPECT_EQ(r.stdout_data, "/tmp 1 2 0077\nfn-x\naliased\npipefail\nchild sees A=1 B=\n") << r.stderr_data;
  // `exit` still records state.
  r = RunOk("cd /etc; C=3; exit 4");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(sb_->shell_state().cwd, "/etc");

  ShellState saved = sb_->shell_state();
  auto text = saved.Serialize();
  auto parsed = ShellState::Parse(text);
  ASSERT_TRUE(parsed.ok());
  ScratchDirs dirs2(name_ + "-b");
  SandboxSpec spec2 = MakeSpec(name_ + "-b", dirs2);
  spec2.shell = *parsed;
  auto sb2 = Sandbox::Create(spec2);
  ASSERT_TRUE(sb2.ok()) << sb2.error().ToString();
  auto r2 = (*sb2)->Run("echo $PWD $A $B $C $(umask); f y; ll", 20s);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->stdout_data, "/etc 1 2 3 0077\nfn-y\naliased\n") << r2->stderr_data;
  EXPECT_TRUE((*sb2)->Destroy().ok());
}

TEST_F(SandboxTest, BackgroundProcessSurvivesItsAction) {
  Start();
  auto r = RunOk("sleep 1000 & echo $!", 10s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.duration, 5s) << "Run waited for the background job";
  std::string pid = r.stdout_data.substr(0, r.stdout_data.find('\n'));
  ASSERT_FALSE(pid.empty());
  auto live = sb_->HasLiveProcesses();
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(*live);
  // Still running, reparented to the sandbox's init, own session inside.
  r = RunOk("kill -0 " + pid + " && awk '{print $4}' /proc/" + pid + "/stat");
  EXPECT_EQ(r.stdout_data, "1\n") << r.stderr_data;
}

// Used on every checkpoint to decide whether CRIU must run: must say false
// exactly when only init is left (zombies do not count) and true otherwise.
TEST_F(SandboxTest, HasLiveProcessesIsExact) {
  Start();
  auto live_now = [&] {
    auto live = sb_->HasLiveProcesses();
    EXPECT_TRUE(live.ok()) << live.error().ToString();
    return live.ok() && *live;
  };
  EXPECT_FALSE(live_now()) << "only init after start";
  RunOk("true");
  EXPECT_FALSE(live_now()) << "a finished action leaves nothing";
  // A job that ends on its own: nothing live once it is gone, whether or not
  // init has reaped it yet.
  auto r = RunOk("sleep 0.2 & echo $!");
  EXPECT_TRUE(live_now());
  std::this_thread::sleep_for(800ms);
  EXPECT_FALSE(live_now()) << "the exited job still counted";
  // A live process holding an unreaped zombie child: live (the parent).
  r = RunOk("(sleep 0.1 & exec sleep 1000) >/dev/null 2>&1 & echo $!");
  std::string pid = r.stdout_data.substr(0, r.stdout_data.find('\n'));
  ASSERT_FALSE(pid.empty());
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(live_now());
  // Frozen processes are still processes to checkpoint.
  ASSERT_TRUE(sb_->Freeze().ok());
  EXPECT_TRUE(live_now());
  ASSERT_TRUE(sb_->Thaw().ok());
  RunOk("kill -9 " + pid);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !live_now();
    if (!gone) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(gone) << "killed job (and its zombie child) still counted";
}

TEST_F(SandboxTest, ChattyBackgroundJobCannotFillTheActionTmpfs) {
  Start();
  // `yes` keeps writing to the action's stdout file after the action returned.
  // `echo` first: a background `yes` started before it may win the race to
  // the file under load (seen with ctest -j2).
  auto r = RunOk("echo started; yes &", 10s);
  EXPECT_EQ(r.stdout_data.substr(0, 8), "started\n");
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 3; ++i) {
    r = RunOk("echo next", 10s);
    EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
    EXPECT_EQ(r.stdout_data, "next\n");
  }
}

TEST_F(SandboxTest, TimeoutKillsTheActionNotTheSandbox) {
  Start();
  auto r = RunOk("sleep 100 & sleep 100; echo never", 500ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(r.duration, 5s);
  EXPECT_EQ(r.stdout_data, "");
  auto live = sb_->HasLiveProcesses();
  ASSERT_TRUE(live.ok());
  EXPECT_FALSE(*live) << "the action's process group should be gone";
  r = RunOk("echo alive");
  EXPECT_EQ(r.stdout_data, "alive\n");
}

TEST_F(SandboxTest, OutputIsCappedAndTruncationReported) {
  spec_.policy.resources.stdout_cap = 1000;
  Start();
  auto r = RunOk("head -c 5000 /dev/zero | tr '\\0' a; echo err >&2");
  EXPECT_EQ(r.stdout_data.size(), 1000u);
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_FALSE(r.stderr_truncated);
}

TEST_F(SandboxTest, CgroupTwoDirectoryHoldsTheSandbox) {
  Start();
  struct stat st {};
  ASSERT_EQ(::stat(sb_->cgroup2_path().c_str(), &st), 0);
  EXPECT_EQ(sb_->cgroup2_id(), st.st_ino);
  std::string procs = testing::ReadText(sb_->cgroup2_path() + "/cgroup.procs");
  EXPECT_NE(procs.find(std::to_string(sb_->init_pid())), std::string::npos) << procs;
  // Inside, the cgroup namespace makes the sandbox's cgroup the root.
  auto r = RunOk("grep '^0::' /proc/self/cgroup");
  EXPECT_EQ(r.stdout_data, "0::/\n");
}

TEST_F(SandboxTest, FreezeAndThaw) {
  Start();
  RunOk("sleep 1000 &");
  ASSERT_TRUE(sb_->Freeze().ok());
  std::string events = testing::ReadText(sb_->cgroup2_path() + "/cgroup.events");
  bool v2_frozen = events.find("frozen 1") != std::string::npos;
  std::string v1 = testing::ReadText("/sys/fs/cgroup/freezer/specula/specula-" + name_ + "/freezer.state");
  EXPECT_TRUE(v2_frozen || v1.rfind("FROZEN", 0) == 0) << events << v1;
  ASSERT_TRUE(sb_->Thaw().ok());
  auto r = RunOk("echo thawed");
  EXPECT_EQ(r.stdout_data, "thawed\n");
}

TEST_F(SandboxTest, BaselineSyscallsAreDenied) {
  spec_.binds.push_back({SPECULA_SYSCALL_PROBE, "/usr/local/bin/specula-syscall-probe", true});
  spec_.policy.syscalls.clear();  // the baseline alone (the default policy defers some of these)
  Start();
  auto r = RunOk("/usr/local/bin/specula-syscall-probe /tmp");
  ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
  std::map<std::string, int> inside;
  std::istringstream in(r.stdout_data);
  std::string name;
  int err;
  while (in >> name >> err) inside[name] = err;
  ASSERT_GE(inside.size(), 40u) << r.stdout_data;
  for (const auto& [n, e] : inside) {
    int want = EPERM;
    if (n == "clone3" || n == "x32_getpid" || n == "i386_getpid") want = ENOSYS;
    if (n == "mknodat_fifo") want = 0;  // not a device: allowed
    EXPECT_EQ(e, want) << n;
  }
  // On the host the same calls mostly get other answers: the filter did it.
  SpawnOptions o;
  o.argv = {SPECULA_SYSCALL_PROBE, "/tmp"};
  auto host = Spawn(o);
  ASSERT_TRUE(host.ok());
  std::istringstream hin(host->out);
  int differ = 0;
  while (hin >> name >> err) differ += inside[name] != err;
  EXPECT_GE(differ, 25) << host->out;
}

TEST_F(SandboxTest, DeferredSyscallBlocksUntilReleased) {
  spec_.policy.syscalls = {{"mkdir", policy::SyscallAction::kDefer},
                           {"mkdirat", policy::SyscallAction::kDefer}};
  Start();
  auto fut = std::async(std::launch::async, [&] { return sb_->Run("mkdir /tmp/deferred && echo made", 30s); });
  std::vector<DeferredCall> pending;
  for (int i = 0; i < 200 && pending.empty(); ++i) {
    std::this_thread::sleep_for(25ms);
    pending = sb_->PendingDeferred();
  }
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_TRUE(pending[0].syscall == "mkdir" || pending[0].syscall == "mkdirat") << pending[0].syscall;
  EXPECT_GT(pending[0].pid, 1);
  EXPECT_EQ(fut.wait_for(300ms), std::future_status::timeout) << "the call did not block";
  EXPECT_FALSE(std::filesystem::exists(dirs_->upper() + "/tmp/deferred"));
  ASSERT_TRUE(sb_->ReleaseDeferred().ok());
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0) << r->stderr_data;
  EXPECT_EQ(r->stdout_data, "made\n");
  EXPECT_TRUE(std::filesystem::exists(dirs_->upper() + "/tmp/deferred"));
  EXPECT_TRUE(sb_->PendingDeferred().empty());
}

TEST_F(SandboxTest, DeferredSyscallIsKilledOnDestroy) {
  spec_.policy.syscalls = {{"mkdir", policy::SyscallAction::kDefer},
                           {"mkdirat", policy::SyscallAction::kDefer}};
  Start();
  auto fut = std::async(std::launch::async, [&] { return sb_->Run("mkdir /tmp/deferred; echo after", 60s); });
  for (int i = 0; i < 200 && sb_->PendingDeferred().empty(); ++i) std::this_thread::sleep_for(25ms);
  ASSERT_EQ(sb_->PendingDeferred().size(), 1u);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(sb_->Destroy().ok());
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->stdout_data, "");
  EXPECT_FALSE(std::filesystem::exists(dirs_->upper() + "/tmp/deferred"));
  auto again = sb_->Run("true");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(sb_->Freeze().error().code(), Code::kFailedPrecondition);
  EXPECT_FALSE(sb_->HasLiveProcesses().ok());
  EXPECT_TRUE(sb_->Destroy().ok()) << "idempotent";
}

TEST_F(SandboxTest, ReadOnlyAndHiddenPathRulesAndBinds) {
  const std::string lossy = dirs_->root() + "/lossy";
  std::filesystem::create_directories(lossy);
  spec_.policy.paths.push_back({"/etc", policy::PathMode::kReadOnly});
  spec_.policy.paths.push_back({"/root", policy::PathMode::kHidden});
  spec_.binds.push_back({lossy, "/mnt/lossy", false});
  Start();
  auto r = RunOk("touch /etc/x 2>&1 | grep -c Read-only; ls -A /root | wc -l; touch /root/x || echo hidden-ro; "
                 "echo escaped > /mnt/lossy/f && echo wrote");
  EXPECT_EQ(r.stdout_data, "1\n0\nhidden-ro\nwrote\n") << r.stderr_data;
  EXPECT_EQ(testing::ReadText(lossy + "/f"), "escaped\n");
  auto ext = sb_->ExternalMounts();
  bool found = false;
  for (const auto& [path, key] : ext) found = found || path == "/mnt/lossy";
  EXPECT_TRUE(found);
}

TEST_F(SandboxTest, ConcurrentSandboxes) {
  // The runtime runs 8 branches at once.
  std::vector<std::future<std::string>> futs;
  for (int i = 0; i < 8; ++i) {
    futs.push_back(std::async(std::launch::async, [this, i]() -> std::string {
      std::string n = name_ + "-c" + std::to_string(i);
      ScratchDirs d(n);
      auto sb = Sandbox::Create(MakeSpec(n, d));
      if (!sb.ok()) return "create: " + sb.error().ToString();
      auto r = (*sb)->Run("echo " + std::to_string(i) + " > /tmp/mine; cat /tmp/mine", 20s);
      if (!r.ok()) return "run: " + r.error().ToString();
      Status st = (*sb)->Destroy();
      if (!st.ok()) return "destroy: " + st.ToString();
      return r->stdout_data;
    }));
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(futs[i].get(), std::to_string(i) + "\n");
}

}  // namespace
}  // namespace specula::sandbox
