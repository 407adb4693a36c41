// Tests that look at host-wide state (mount table, cgroup trees, child
// processes) or run CRIU: registered RUN_SERIAL so nothing else runs beside.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/paths.h"
#include "common/spawn.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox_test_util.h"

namespace specula::sandbox {
namespace {

using namespace std::chrono_literals;
using testing::MakeSpec;
using testing::CriuDump;
using testing::CriuRestore;
using testing::HaveCriu;
using testing::ReadText;
using testing::ScratchDirs;
using testing::UniqueName;

struct HostCounts {
  size_t mounts = 0, cgroups = 0, fds = 0, children = 0;
  bool operator==(const HostCounts&) const = default;
};

// Other engineers' tests share this host: count only what carries `tag`.
size_t CountDirs(const std::string& root, const std::string& tag) {
  std::error_code ec;
  size_t n = 0;
  if (!std::filesystem::exists(root, ec)) return 0;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_directory(ec) && it->path().string().find(tag) != std::string::npos) ++n;
  }
  return n;
}

HostCounts Count(const std::string& tag) {
  HostCounts c;
  std::ifstream mi("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mi, line)) c.mounts += line.find(tag) != std::string::npos;
  for (const char* h : {"unified", "memory", "pids", "cpu", "freezer", ""}) {
    c.cgroups += CountDirs(std::string("/sys/fs/cgroup/") + h + "/specula", tag);
  }
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++c.fds;
  }
  const std::string me = std::to_string(::getpid());
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string n = e.path().filename();
    if (n.empty() || !std::isdigit(static_cast<unsigned char>(n[0]))) continue;
    std::string stat = ReadText(e.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    // Our children, and anything inside a cgroup named after the test.
    bool in_cgroup = ReadText(e.path().string() + "/cgroup").find(tag) != std::string::npos;
    if (ppid == me || in_cgroup) ++c.children;
  }
  return c;
}

std::ostream& operator<<(std::ostream& os, const HostCounts& c) {
  return os << "mounts=" << c.mounts << " cgroups=" << c.cgroups << " fds=" << c.fds
            << " children=" << c.children;
}

TEST(SandboxSerialTest, DestroyLeavesNothingBehind) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("clean");
  ScratchDirs dirs(name);
  // Warm up: the shared "specula" parent cgroups exist from now on.
  {
    auto warm = Sandbox::Create(MakeSpec(name + "-warm", dirs));
    ASSERT_TRUE(warm.ok()) << warm.error().ToString();
  }
  std::filesystem::remove_all(dirs.upper());
  std::filesystem::create_directories(dirs.upper());
  HostCounts before = Count(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.syscalls = {{"mkdir", policy::SyscallAction::kDefer}};  // exercise the notifier too
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  EXPECT_EQ(Count(name).children, before.children + 1) << "init";
  HostCounts during = Count(name);
  auto r = (*sb)->Run("sleep 1000 & sleep 1000 & (setsid sleep 1000 &); echo started", 20s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "started\n");
  during = Count(name);
  EXPECT_EQ(during.children, before.children + 4) << "init and three sleeps";
  EXPECT_GT(during.mounts, before.mounts);
  EXPECT_GT(during.cgroups, before.cgroups);
  ASSERT_TRUE((*sb)->Destroy().ok());
  EXPECT_EQ(Count(name), before) << ReadText("/proc/self/mountinfo");
  EXPECT_FALSE(std::filesystem::exists(dirs.run()));
  sb->reset();
  EXPECT_EQ(Count(name), before);
  // The default parent ("specula", no one's to close) goes with the last
  // sandbox in it; one that still holds other directories stays.
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  for (const auto& d : CgroupParentDirs(*layout, "specula")) {
    bool in_use = false;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d, ec)) in_use = in_use || e.is_directory();
    EXPECT_TRUE(!std::filesystem::exists(d) || in_use) << d << " left behind, empty";
  }
}

TEST(SandboxSerialTest, CriuDumpsSandboxWithBackgroundProcessAndRestoresIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!HaveCriu()) GTEST_SKIP() << "no CRIU at " << CriuPath() << " (scripts/setup.sh installs it)";
  std::string name = UniqueName("criu");
  ScratchDirs dirs(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.syscalls.clear();  // no user-notify listener (CRIU cannot restore one)
  // Masks and read-only binds are mounts CRIU has to carry too.
  spec.policy.paths.push_back({"/etc/hostname", policy::PathMode::kHidden});
  spec.policy.paths.push_back({"/root", policy::PathMode::kHidden});
  spec.policy.paths.push_back({"/usr", policy::PathMode::kReadOnly});
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  auto r = (*sb)->Run("cd /tmp; echo hello > f; sleep 1000 & echo $!", 20s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  std::string sleep_pid = r->stdout_data.substr(0, r->stdout_data.find('\n'));

  const std::string images = dirs.root() + "/images";
  Status dumped = CriuDump(**sb, images);
  ASSERT_TRUE(dumped.ok()) << dumped.ToString();
  EXPECT_TRUE(std::filesystem::exists(images + "/inventory.img"));
  // The dump killed the tree (no --leave-running).
  ShellState shell = (*sb)->shell_state();
  ASSERT_TRUE((*sb)->Destroy().ok());

  // Restore into a new sandbox whose upper dir is a copy of the old one.
  std::string name2 = name + "-r";
  ScratchDirs dirs2(name2);
  SpawnOptions cp;
  cp.argv = {"cp", "-a", "--", dirs.upper() + "/.", dirs2.upper()};
  auto copied = Spawn(cp);
  ASSERT_TRUE(copied.ok() && copied->success());
  SandboxSpec spec2 = MakeSpec(name2, dirs2);
  spec2.policy = spec.policy;
  spec2.shell = shell;
  auto restored = CriuRestore(spec2, images);
  ASSERT_TRUE(restored.ok()) << restored.error().ToString();
  auto live = (*restored)->HasLiveProcesses();
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(*live);
  auto r2 = (*restored)->Run("kill -0 " + sleep_pid + " && echo sleep-alive; cat f; hostname; "
                             "wc -c < /etc/hostname; ls -A /root | wc -l; touch /usr/x || echo usr-ro", 20s);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->stdout_data, "sleep-alive\nhello\nspecula\n0\n0\nusr-ro\n") << r2->stderr_data;
  ASSERT_TRUE((*restored)->Freeze().ok());
  ASSERT_TRUE((*restored)->Thaw().ok());
  EXPECT_TRUE((*restored)->Destroy().ok());
}

// Lossy binds are external mounts: a sandbox with a rw host-file bind and a
// rw host sysctl bind is dumpable, and after the restore both still reach
// the host's objects.
TEST(SandboxSerialTest, CriuDumpsAndRestoresLossyBinds) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!HaveCriu()) GTEST_SKIP() << "no CRIU at " << CriuPath();
  const std::string knob = "/proc/sys/net/core/somaxconn";
  const std::string original = ReadText(knob);
  ASSERT_FALSE(original.empty());
  // Put the host's knob back whatever happens below.
  struct Restore {
    std::string path, value;
    ~Restore() {
      if (ReadText(path) == value) return;
      std::ofstream out(path);
      out << value;
      out.flush();
      if (!out) ADD_FAILURE() << "could not restore " << path;
    }
  } restore_knob{knob, original};

  std::string name = UniqueName("criubind");
  ScratchDirs dirs(name);
  const std::string host_file = dirs.root() + "/lossy-file";
  { std::ofstream(host_file) << "before\n"; }
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.syscalls.clear();  // no user-notify listener (CRIU cannot restore one)
  spec.policy.sandbox.user_namespace = false;  // the host knob takes writes from the host's root only
  spec.binds.push_back({host_file, "/etc/specula-lossy", false});
  spec.binds.push_back({knob, knob, false});
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  auto r = (*sb)->Run("echo one > /etc/specula-lossy; sleep 1000 & echo $!", 20s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  std::string sleep_pid = r->stdout_data.substr(0, r->stdout_data.find('\n'));
  EXPECT_EQ(ReadText(host_file), "one\n");

  const std::string images = dirs.root() + "/images";
  Status dumped = CriuDump(**sb, images);
  ASSERT_TRUE(dumped.ok()) << dumped.ToString();
  ShellState shell = (*sb)->shell_state();
  ASSERT_TRUE((*sb)->Destroy().ok());

  std::string name2 = name + "-r";
  ScratchDirs dirs2(name2);
  SpawnOptions cp;
  cp.argv = {"cp", "-a", "--", dirs.upper() + "/.", dirs2.upper()};
  auto copied = Spawn(cp);
  ASSERT_TRUE(copied.ok() && copied->success());
  SandboxSpec spec2 = spec;
  spec2.name = name2;
  spec2.upper_dir = dirs2.upper();
  spec2.work_dir = dirs2.work();
  spec2.run_dir = dirs2.run();
  spec2.shell = shell;
  auto restored = CriuRestore(spec2, images);
  ASSERT_TRUE(restored.ok()) << restored.error().ToString();
  // The staging mounts CRIU bound from are gone again.
  EXPECT_EQ(ReadText("/proc/self/mountinfo").find(dirs2.run() + "/binds"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dirs2.run() + "/binds"));
  const std::string wanted = std::to_string(std::stol(original) + 5);
  auto r2 = (*restored)->Run("kill -0 " + sleep_pid + " && echo sleep-alive; cat /etc/specula-lossy; "
                             "echo two > /etc/specula-lossy; echo " + wanted + " > " + knob + " && echo knob", 20s);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->stdout_data, "sleep-alive\none\nknob\n") << r2->stderr_data;
  EXPECT_EQ(ReadText(host_file), "two\n");
  EXPECT_EQ(ReadText(knob), wanted + "\n") << "after the restore the bind must still be the host's knob";
  EXPECT_TRUE((*restored)->Destroy().ok());
}

// CRIU cannot checkpoint a seccomp user-notification listener: what does a
// restored task get when it reaches a deferred syscall? (docs/sandbox.md)
TEST(SandboxSerialTest, RestoredTaskHittingDeferredSyscallFailsClosed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!HaveCriu()) GTEST_SKIP() << "no CRIU at " << CriuPath();
  std::string name = UniqueName("criudefer");
  ScratchDirs dirs(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.syscalls = {{"mkdir", policy::SyscallAction::kDefer}, {"mkdirat", policy::SyscallAction::kDefer}};
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  // A background job that reaches the deferred call only after the restore.
  auto r = (*sb)->Run("(sleep 3; mkdir /tmp/deferred-dir 2>/tmp/err; echo $? > /tmp/rc) >/dev/null 2>&1 &", 20s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const std::string images = dirs.root() + "/images";
  Status dumped = CriuDump(**sb, images);
  ASSERT_TRUE(dumped.ok()) << dumped.ToString();
  ASSERT_TRUE((*sb)->Destroy().ok());

  std::string name2 = name + "-r";
  ScratchDirs dirs2(name2);
  SpawnOptions cp;
  cp.argv = {"cp", "-a", "--", dirs.upper() + "/.", dirs2.upper()};
  auto copied = Spawn(cp);
  ASSERT_TRUE(copied.ok() && copied->success());
  SandboxSpec spec2 = MakeSpec(name2, dirs2);
  spec2.policy.syscalls = spec.policy.syscalls;
  auto restored = CriuRestore(spec2, images);
  ASSERT_TRUE(restored.ok()) << restored.error().ToString();
  std::string rc;
  for (int i = 0; i < 100 && rc.empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    rc = ReadText(dirs2.upper() + "/tmp/rc");
  }
  std::string err = ReadText(dirs2.upper() + "/tmp/err");
  // Fail closed: the call does not run (no listener holds it, nobody can
  // release it); the kernel answers ENOSYS ("Function not implemented").
  EXPECT_EQ(rc, "1\n");
  EXPECT_NE(err.find("Function not implemented"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dirs2.upper() + "/tmp/deferred-dir"));
  EXPECT_TRUE((*restored)->PendingDeferred().empty());
  EXPECT_TRUE((*restored)->Destroy().ok());
}

}  // namespace
}  // namespace specula::sandbox
