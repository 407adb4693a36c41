// The speculation core with per-branch instrumentation wired in (real eBPF
// tracer, real sandboxes): commit flags, branch reports, the
// promote_nondeterministic policy, and checkpoint elision.
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "core_test_util.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

class InstrumentedBranchTest : public CoreFixture {
 protected:
  // Runs `cmd` as a branch until done; skips the test when the kernel
  // refuses the effect tracer (the report then says "untraced").
  BranchInfo RunBranch(const std::string& session, const std::string& cmd) {
    auto b = mgr_->Speculate(session, cmd);
    EXPECT_TRUE(b.ok()) << b.error().ToString();
    if (!b.ok()) return {};
    EXPECT_TRUE(mgr_->WaitBranch(*b, 30s).ok());
    auto info = mgr_->ShowBranch(*b);
    EXPECT_TRUE(info.ok()) << info.error().ToString();
    return info.ok() ? *info : BranchInfo{};
  }
  static bool HasFlag(const nlohmann::json& report, const std::string& f) {
    for (const auto& x : report["flags"]) {
      if (x == f) return true;
    }
    return false;
  }
};

TEST_F(InstrumentedBranchTest, BranchShowCarriesTheEffectJournal) {
  std::string s = NewSession();
  std::string path = Scratch() + "-effects";
  BranchInfo info = RunBranch(s, "echo hi > " + path);
  ASSERT_EQ(info.state, BranchState::kDone);
  ASSERT_TRUE(info.report.has_value());
  if (HasFlag(*info.report, "untraced")) GTEST_SKIP() << "effect tracer refused by this kernel";
  bool saw_write = false;
  for (const auto& e : (*info.report)["effects"]) {
    saw_write |= e.value("path", std::string()).find(path) != std::string::npos;
  }
  EXPECT_TRUE(saw_write) << info.report->dump();
  EXPECT_EQ((*info.report)["denied_egress"], 0);
  // The branch's write stays in its sandbox until commit.
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  auto c = MustCommit(s, "echo hi > " + path);
  EXPECT_TRUE(c.hit);
  EXPECT_TRUE(c.lossy_effects.empty());
}

TEST_F(InstrumentedBranchTest, NondeterministicBranchIsFlaggedOrRefusedByPolicy) {
  const std::string cmd = "head -c 8 /dev/urandom | od -An -tx1";
  {
    std::string s = NewSession();
    BranchInfo info = RunBranch(s, cmd);
    ASSERT_TRUE(info.report.has_value());
    if (HasFlag(*info.report, "untraced")) GTEST_SKIP() << "effect tracer refused by this kernel";
    EXPECT_TRUE(HasFlag(*info.report, "nondeterministic")) << info.report->dump();
    auto c = MustCommit(s, cmd);
    EXPECT_TRUE(c.hit);
    EXPECT_NE(std::find(c.flags.begin(), c.flags.end(), "nondeterministic"), c.flags.end());
  }
  {
    policy::Policy p = policy::DefaultPolicy();
    p.speculation.promote_nondeterministic = false;
    std::string s = NewSession(p);
    BranchInfo info = RunBranch(s, cmd);
    ASSERT_TRUE(info.report.has_value());
    auto c = MustCommit(s, cmd);
    EXPECT_FALSE(c.hit) << "a nondeterministic branch must not be promoted under this policy";
    EXPECT_EQ(c.exit_code, 0);
    auto old = mgr_->ShowBranch(info.id);
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(old->state, BranchState::kDiscarded);
  }
  {
    // A deterministic branch is still a hit under that policy.
    policy::Policy p = policy::DefaultPolicy();
    p.speculation.promote_nondeterministic = false;
    std::string s = NewSession(p);
    (void)RunBranch(s, "echo same");
    auto c = MustCommit(s, "echo same");
    EXPECT_TRUE(c.hit);
  }
}

TEST_F(InstrumentedBranchTest, CheckpointIsElidedOnlyWhenNothingIsLeftRunning) {
  std::string s = NewSession();
  auto quiet = MustCommit(s, "sleep 0.1; echo quiet");
  auto c1 = mgr_->ShowCheckpoint(quiet.head);
  ASSERT_TRUE(c1.ok());
  EXPECT_FALSE(c1->has_process_image);
  auto bg = MustCommit(s, "sleep 30 &");
  auto c2 = mgr_->ShowCheckpoint(bg.head);
  ASSERT_TRUE(c2.ok());
  EXPECT_TRUE(c2->has_process_image);
}

}  // namespace
}  // namespace specula::core::testing
