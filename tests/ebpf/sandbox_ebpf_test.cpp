// Integration: the effect tracer and the egress guard on a real Sandbox (its
// cgroup2 directory and id), as the runtime will use them.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "ebpf/effect_analysis.h"
#include "ebpf/effect_tracer.h"
#include "ebpf/egress_guard.h"
#include "sandbox/sandbox.h"

namespace specula::ebpf {
namespace {

using namespace std::chrono_literals;

class SandboxEbpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    root_ = "/tmp/specula-ebpf-sb-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(root_ + "/upper");
    std::filesystem::create_directories(root_ + "/work");
    spec_.name = "ebpf-" + std::to_string(::getpid()) + "-" +
                 std::to_string(::testing::UnitTest::GetInstance()->random_seed() + counter_++);
    spec_.upper_dir = root_ + "/upper";
    spec_.work_dir = root_ + "/work";
    spec_.run_dir = root_ + "/run";
    spec_.policy = policy::DefaultPolicy();
  }
  void TearDown() override {
    if (sb_) {
      EXPECT_TRUE(sb_->Destroy().ok());
    }
    sb_.reset();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }
  void Start() {
    auto r = sandbox::Sandbox::Create(spec_);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    sb_ = std::move(*r);
  }
  sandbox::ActionResult Run(const std::string& cmd) {
    auto r = sb_->Run(cmd, 20s);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : sandbox::ActionResult{};
  }

  static inline int counter_ = 0;
  std::string root_;
  sandbox::SandboxSpec spec_;
  std::unique_ptr<sandbox::Sandbox> sb_;
};

TEST_F(SandboxEbpfTest, ActionsAreTracedAndTheCheckpointDecisionMatchesTheSandbox) {
  Start();
  ASSERT_NE(sb_, nullptr);
  auto loaded = EffectTracer::Load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EffectJournal journal;
  std::unique_ptr<EffectTracer> tracer = std::move(*loaded);
  ASSERT_TRUE(tracer->AddCgroup(sb_->cgroup2_id(), journal.Sink()).ok());

  auto r = Run("echo hi > /tmp/a; mv /tmp/a /tmp/b; (sleep 1000 &) ; echo started");
  EXPECT_EQ(r.stdout_data, "started\n") << r.stderr_data;
  // The background subshell may exec sleep after the action has returned
  // (the CI flake: nothing lost, just not yet happened), so drain until its
  // exec shows up or the wait runs out.
  std::vector<EffectEvent> ev;
  bool saw_rename = false, saw_exec_sleep = false;
  for (int i = 0; i < 250 && !(saw_rename && saw_exec_sleep); ++i) {
    if (i > 0) std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(tracer->Drain().ok());
    for (const EffectEvent& e : journal.Take()) {
      EXPECT_EQ(e.traced_cgroup_id, sb_->cgroup2_id());
      if (e.op == EffectOp::kRename && e.path == "/tmp/a" && e.path2 == "/tmp/b" && e.result == 0) saw_rename = true;
      if (e.op == EffectOp::kExec && e.path.find("sleep") != std::string::npos) saw_exec_sleep = true;
      ev.push_back(e);
    }
  }
  EXPECT_TRUE(saw_rename);
  EXPECT_TRUE(saw_exec_sleep);
  auto live = sb_->HasLiveProcesses();
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(*live);
  CheckpointPlan plan = DecideCheckpoint({ev, tracer->Complete(sb_->cgroup2_id()), false});
  EXPECT_TRUE(plan.criu_dump) << plan.reason;
  EXPECT_FALSE(plan.running.empty());

  // Killing every leftover process frees the next checkpoint from its dump.
  r = Run("kill $(for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = sleep ] && basename $p; done)");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  for (int i = 0; i < 100 && sb_->HasLiveProcesses().ok() && *sb_->HasLiveProcesses(); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(tracer->Drain().ok());
  ev = journal.Take();
  CheckpointPlan next = DecideCheckpoint({ev, tracer->Complete(sb_->cgroup2_id()), false, plan.running});
  live = sb_->HasLiveProcesses();
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(next.criu_dump, *live) << next.reason;
  EXPECT_TRUE(tracer->RemoveCgroup(sb_->cgroup2_id()).ok());
}

TEST_F(SandboxEbpfTest, EgressGuardOnTheSandboxCgroup) {
  Start();
  ASSERT_NE(sb_, nullptr);
  // bash's /dev/tcp: EPERM from the guard, ENETUNREACH from the netns.
  const std::string probe = "exec 3<>/dev/tcp/10.255.255.1/9";
  auto r = Run(probe);
  EXPECT_NE(r.stderr_data.find("unreachable"), std::string::npos) << r.stderr_data;
  {
    Result<EgressGuard> guard = EgressGuard::Attach(sb_->cgroup2_path(), spec_.policy.network);
    ASSERT_TRUE(guard.ok()) << guard.error().ToString();
    r = Run(probe);
    EXPECT_NE(r.stderr_data.find("not permitted"), std::string::npos) << r.stderr_data;
    Result<uint64_t> denied = guard->DeniedCount();
    ASSERT_TRUE(denied.ok());
    EXPECT_GE(*denied, 1u);
  }
  r = Run(probe);
  EXPECT_NE(r.stderr_data.find("unreachable"), std::string::npos) << "detached: " << r.stderr_data;
}

}  // namespace
}  // namespace specula::ebpf
