// Losslessness of the sandbox seen across sealed layers, sandboxes and CRIU
// restores (the cases tests/runtime_core/differential_test.cpp found):
// hard links whose one name is written in a later layer, error messages
// that must not depend on the wrapper, and actions of a CRIU-restored
// sandbox sharing init's time namespace so the tree can be dumped again.
// Registered RUN_SERIAL: mounts tmpfs stores, runs CRIU.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "common/paths.h"
#include "common/spawn.h"
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

// Layers must not live on the base's filesystem (overlayfs refuses a lower
// below another lower of the same fs), so the "store" is a tmpfs below the
// scratch root; ScratchDirs unmounts it even when a test fails.
class LayerStore {
 public:
  explicit LayerStore(const ScratchDirs& dirs) : root_(dirs.root() + "/store") {
    std::filesystem::create_directories(root_);
    ok_ = ::mount("tmpfs", root_.c_str(), "tmpfs", 0, "mode=0700,size=64m") == 0;
  }
  LayerStore(const LayerStore&) = delete;
  LayerStore& operator=(const LayerStore&) = delete;
  ~LayerStore() {
    if (ok_) ::umount2(root_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }
  // A fresh upper/work pair named n; returns the upper dir.
  std::string Fresh(const std::string& n) {
    std::filesystem::create_directories(root_ + "/" + n + "/upper");
    std::filesystem::create_directories(root_ + "/" + n + "/work");
    return root_ + "/" + n + "/upper";
  }
  std::string Work(const std::string& n) const { return root_ + "/" + n + "/work"; }
  std::string Run(const std::string& n) const { return root_ + "/" + n + "/run"; }

 private:
  std::string root_;
  bool ok_ = false;
};

SandboxSpec BranchSpec(const std::string& name, LayerStore& store, const std::string& n,
                       std::vector<std::string> layers) {
  SandboxSpec spec;
  spec.name = name + "-" + n;
  spec.upper_dir = store.Fresh(n);
  spec.work_dir = store.Work(n);
  spec.run_dir = store.Run(n);
  spec.layers = std::move(layers);
  spec.policy = policy::DefaultPolicy();
  return spec;
}

std::string MountOptionsOf(const std::string& mountpoint) {
  std::ifstream mi("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mi, line)) {
    std::istringstream words(line);
    std::string id, parent, dev, root, mp;
    words >> id >> parent >> dev >> root >> mp;
    if (mp == mountpoint) return line;
  }
  return "";
}

Result<std::string> RunOk(Sandbox& sb, const std::string& cmd) {
  auto r = sb.Run(cmd, 20s);
  if (!r.ok()) return r.error();
  if (r->exit_code != 0) return Error(Code::kInternal, "`" + cmd + "` failed: " + r->stderr_data);
  return r->stdout_data;
}

// `chmod`/append on one name of a link made in an earlier (sealed) layer:
// both names change, inside the branch and once its upper is sealed too.
TEST(SandboxLosslessTest, HardLinkMadeInEarlierLayerSurvivesWriteInLaterLayer) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("hl");
  ScratchDirs dirs(name);
  LayerStore store(dirs);
  ASSERT_TRUE(store.ok());
  const std::string d = "/var/tmp/" + name;

  std::string l1;
  {
    SandboxSpec spec = BranchSpec(name, store, "l1", {});
    l1 = spec.upper_dir;
    auto sb = Sandbox::Create(spec);
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    auto r = RunOk(**sb, "mkdir " + d + " && echo one > " + d + "/a && ln " + d + "/a " + d + "/b");
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_TRUE((*sb)->Destroy().ok());
    std::filesystem::remove_all(store.Work("l1"));
  }
  // Several branches of the same layer at once, each with its own upper: one
  // writes a, one chmods b, one only reads.
  const std::vector<std::pair<std::string, std::string>> actions = {
      {"w", "echo two >> " + d + "/a"}, {"c", "chmod 600 " + d + "/b"}, {"r", "cat " + d + "/a >/dev/null"},
      {"u", "rm " + d + "/b"}};
  std::vector<std::unique_ptr<Sandbox>> branches;
  for (const auto& [n, cmd] : actions) {
    auto sb = Sandbox::Create(BranchSpec(name, store, n, {l1}));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    std::string opts = MountOptionsOf((*sb)->root());
    EXPECT_NE(opts.find("index=on"), std::string::npos) << opts;
    EXPECT_EQ(opts.find("redirect_dir=on"), std::string::npos) << opts;
    EXPECT_EQ(opts.find("metacopy=on"), std::string::npos) << opts;
    branches.push_back(std::move(sb).value());
  }
  for (size_t i = 0; i < actions.size(); ++i) {
    auto r = RunOk(*branches[i], actions[i].second + " && stat -c '%a %h %i' " + d + "/a " + d + "/b | uniq -c");
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    // One line: both names show the same inode, mode and link count.
    EXPECT_EQ(std::count(r->begin(), r->end(), '\n'), 1) << actions[i].first << ": " << *r;
  }
  for (auto& b : branches) ASSERT_TRUE(b->Destroy().ok());
  // index=on keeps its index in the work dir, never in the upper (which is
  // sealed and applied to hosts).
  EXPECT_FALSE(std::filesystem::exists(store.Fresh("w") + "/index"));

  // Seal each branch's upper above l1 and look from a new sandbox. The
  // store drops a branch's work dir (and with it index=on's extra link).
  for (const auto& [n, cmd] : actions) std::filesystem::remove_all(store.Work(n));
  const std::string linked = "cd " + d + " && [ a -ef b ] && echo $(stat -c '%a %h' b) $(cat b)";
  const std::vector<std::tuple<std::string, std::string, std::string>> want = {
      {"w", linked, "644 2 one two"},
      {"c", linked, "600 2 one"},
      {"r", linked, "644 2 one"},
      // The removed name's link is gone from the count as well.
      {"u", "cd " + d + " && echo $(ls) $(stat -c '%a %h' a) $(cat a)", "a 644 1 one"}};
  for (const auto& [n, cmd, expect] : want) {
    auto sb = Sandbox::Create(BranchSpec(name, store, "after-" + n, {l1, store.Fresh(n)}));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    auto r = RunOk(**sb, cmd);
    ASSERT_TRUE(r.ok()) << n << ": " << r.error().ToString();
    EXPECT_EQ(*r, expect + "\n") << n;
    ASSERT_TRUE((*sb)->Destroy().ok());
  }
}

// What bash says when run as `bash -c CMD` on the host, in cwd /.
std::string HostBashStderr(const std::string& cmd) {
  SpawnOptions o;
  o.argv = {"bash", "--noprofile", "--norc", "-c", cmd};
  o.cwd = "/";
  auto r = Spawn(o);
  return r.ok() ? r->err : "<spawn failed: " + r.error().ToString() + ">";
}

TEST(SandboxLosslessTest, ErrorMessagesReadLikeBashDashCAndNeverNameTheWrapper) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("msg");
  ScratchDirs dirs(name);
  auto sb = Sandbox::Create(MakeSpec(name, dirs));
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  const std::vector<std::string> cmds = {
      "nosuchcmd_x1",
      "echo out; nosuchcmd_x2\nnosuchcmd_x3",
      "cd /nonexistent-dir",
      "f() { nosuchcmd_x4; }; f",
      "echo $((1/0))",
      "readonly R=1; R=2",
      "set -u; echo $undefined_var_x",
  };
  std::vector<std::string> first;
  for (const auto& c : cmds) {
    auto r = (*sb)->Run(c, 20s);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->stderr_data, HostBashStderr(c)) << c;
    EXPECT_EQ(r->stderr_data.find("/run/.specula"), std::string::npos) << r->stderr_data;
    first.push_back(r->stderr_data);
  }
  // A large shell state and functions defined in earlier actions change
  // nothing (the old wrapper's line numbers grew with the state).
  auto big = (*sb)->Run("for i in $(seq 300); do eval \"v$i=$i\"; done; g() { nosuchcmd_g; }; "
                        "set +u; alias zz=true", 20s);
  ASSERT_TRUE(big.ok() && big->exit_code == 0) << (big.ok() ? big->stderr_data : big.error().ToString());
  for (size_t i = 0; i < cmds.size(); ++i) {
    if (cmds[i].rfind("set -u", 0) == 0 || cmds[i].rfind("readonly", 0) == 0) continue;  // state-changing
    auto r = (*sb)->Run(cmds[i], 20s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->stderr_data, first[i]) << cmds[i];
  }
  auto g = (*sb)->Run("g", 20s);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->stderr_data.find("/run/.specula"), std::string::npos) << g->stderr_data;
  EXPECT_NE(g->stderr_data.find("nosuchcmd_g: command not found"), std::string::npos) << g->stderr_data;
  // $0 is what `bash -c` gives.
  auto zero = (*sb)->Run("echo $0", 20s);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->stdout_data, "bash\n");
  ASSERT_TRUE((*sb)->Destroy().ok());
}

std::string NsLink(pid_t pid, const char* ns) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns, ec);
  return ec ? "<" + ec.message() + ">" : p.string();
}

// Restored sandbox -> action starts another background job -> dump again ->
// restore again: both jobs alive. Fails with "Can't restore sub-task in NS
// (cflags 80)" when actions do not join init's time namespace.
TEST(SandboxLosslessTest, RestoredSandboxWithNewJobsCanBeDumpedAndRestoredAgain) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (::access(CriuPath().c_str(), X_OK) != 0) GTEST_SKIP() << "no CRIU at " << CriuPath();
  std::string name = UniqueName("timens");
  ScratchDirs dirs(name);
  LayerStore store(dirs);
  ASSERT_TRUE(store.ok());
  auto spec_for = [&](const std::string& n, const ShellState& shell) {
    SandboxSpec s = BranchSpec(name, store, n, {});
    s.policy.syscalls.clear();  // no user-notify listener (CRIU cannot restore one)
    s.shell = shell;
    return s;
  };
  // Each generation's upper is a copy of the previous one (as in the
  // serial CRIU test): CRIU restores file references by path.
  auto copy_upper = [&](const std::string& from, const std::string& to) {
    SpawnOptions cp;
    cp.argv = {"cp", "-a", "--", from + "/.", to};
    auto c = Spawn(cp);
    return c.ok() && c->success();
  };

  auto sb = Sandbox::Create(spec_for("g0", ShellState{}));
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  auto r = RunOk(**sb, "cd /tmp; sleep 1001 & echo $!");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  std::string first = r->substr(0, r->find('\n'));
  ASSERT_TRUE(CriuDump(**sb, dirs.root() + "/img1").ok());
  ShellState shell = (*sb)->shell_state();
  ASSERT_TRUE((*sb)->Destroy().ok());

  SandboxSpec s1 = spec_for("g1", shell);
  ASSERT_TRUE(copy_upper(store.Fresh("g0"), s1.upper_dir));
  auto r1 = CriuRestore(s1, dirs.root() + "/img1");
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  r = RunOk(**r1, "sleep 1002 & echo $!");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  std::string second = r->substr(0, r->find('\n'));
  // The new job shares init's time namespace (CRIU gave init a new one).
  auto pids = RunOk(**r1, "kill -0 " + first + " && kill -0 " + second + " && echo both");
  ASSERT_TRUE(pids.ok()) << pids.error().ToString();
  EXPECT_EQ(*pids, "both\n");
  ASSERT_TRUE(CriuDump(**r1, dirs.root() + "/img2").ok());
  shell = (*r1)->shell_state();
  ASSERT_TRUE((*r1)->Destroy().ok());

  SandboxSpec s2 = spec_for("g2", shell);
  ASSERT_TRUE(copy_upper(s1.upper_dir, s2.upper_dir));
  auto r2 = CriuRestore(s2, dirs.root() + "/img2");
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  auto alive = RunOk(**r2, "kill -0 " + first + " && kill -0 " + second + " && echo both; "
                           "tr '\\0' ' ' < /proc/" + second + "/cmdline");
  ASSERT_TRUE(alive.ok()) << alive.error().ToString();
  EXPECT_EQ(*alive, "both\nsleep 1002 ");
  // Every task of the sandbox, including an action's, is in init's time ns.
  auto ns = RunOk(**r2, "readlink /proc/1/ns/time /proc/self/ns/time /proc/" + second + "/ns/time | uniq | wc -l");
  ASSERT_TRUE(ns.ok()) << ns.error().ToString();
  EXPECT_EQ(*ns, "1\n");
  EXPECT_NE(NsLink((*r2)->init_pid(), "time"), NsLink(::getpid(), "time"))
      << "CRIU restored init into a time namespace of its own";
  ASSERT_TRUE((*r2)->Destroy().ok());
}

}  // namespace
}  // namespace specula::sandbox
