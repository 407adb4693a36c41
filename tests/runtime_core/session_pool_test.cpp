// The warm pool (runtime/core/session_pool.cpp) against the real sandbox,
// CRIU and store: a missed commit on a warm sandbox runs at the committed
// path's priority, a new head drops the old pool, destroying the session
// leaves nothing, and sessions with lossy paths never pool. Losslessness with
// the pool on is the differential test's (differential_test.cpp), and the
// pool's size follows what the session's heads are asked for.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core_test_util.h"
#include "runtime/core/crash_recovery.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

class SessionPoolTest : public CoreFixture {
 protected:
  void SetUp() override {
    CoreFixture::SetUp();
    OpenManager(16, /*pool_per_session=*/2);
  }
  // Until the manager has `n` ready sandboxes and none filling. Bounded so
  // a broken build cannot hang; not a timing assertion.
  bool WaitReady(uint64_t n) {
    for (int i = 0; i < 3000; ++i) {
      auto st = mgr_->pool_stats();
      if (st.ready == n && st.filling == 0) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  // The branch dirs on disk (a pooled sandbox has one before its record).
  size_t BranchDirs() {
    std::string root = mgr_->store().BranchDir("");
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root, ec)) n += e.is_directory() ? 1 : 0;
    return n;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::string v;
    in >> v;
    return v;
  }
};

TEST_F(SessionPoolTest, AMissedCommitOnAWarmSandboxRunsAtTheCommittedPriority) {
  std::string s = NewSession();
  ASSERT_TRUE(WaitReady(2)) << "no warm sandboxes for the session's root";
  const uint64_t hits = mgr_->pool_stats().hits;
  // The command reports its niceness (a pooled init must not inherit the
  // fill thread's) and stays long enough for its cgroup to be read.
  CommitResult r;
  std::thread t([&] { r = MustCommit(s, "nice; sleep 1"); });
  std::string weight;
  for (int i = 0; i < 500 && weight.empty(); ++i) {
    std::this_thread::sleep_for(5ms);
    auto bs = mgr_->ListBranches(s);
    if (!bs.ok()) continue;
    for (const auto& b : *bs) {
      if (b.state != BranchState::kRunning) continue;
      for (const auto& d : SandboxCgroupDirs(b.id)) {
        if (::access((d + "/cpu.weight").c_str(), F_OK) == 0) weight = Read(d + "/cpu.weight");
        if (::access((d + "/cpu.shares").c_str(), F_OK) == 0) weight = "shares " + Read(d + "/cpu.shares");
      }
    }
  }
  t.join();
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.stdout_data, "0\n") << r.stderr_data;
  EXPECT_EQ(mgr_->pool_stats().hits, hits + 1) << "the commit did not take a warm sandbox";
  const uint32_t want = policy::DefaultPolicy().resources.cpu_weight;
  EXPECT_TRUE(weight == std::to_string(want) || weight == "shares " + std::to_string(want * 1024 / 100))
      << "the committed action ran at weight '" << weight << "', the policy's is " << want;
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
}

TEST_F(SessionPoolTest, ANewHeadDropsTheOldPoolAndDestroyLeavesNothing) {
  std::string s = NewSession();
  ASSERT_TRUE(WaitReady(2));
  auto root = mgr_->ShowSession(s);
  ASSERT_TRUE(root.ok());
  // A branch on a warm sandbox, then a commit that misses it: the branch is
  // discarded, the other warm sandbox of the old head dropped.
  auto b = mgr_->Speculate(s, "echo guess");
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  auto r = MustCommit(s, "echo real > /tmp/pool-real; cat /tmp/pool-real");
  EXPECT_EQ(r.stdout_data, "real\n");
  ASSERT_TRUE(WaitReady(2)) << "the new head got no warm sandboxes";
  mgr_->WaitForDiscards();
  // Two warm ones of the new head; nothing of the old head's pool.
  EXPECT_EQ(BranchDirs(), 2u);
  // A branch of the new head sees the commit's write.
  auto seen = mgr_->Speculate(s, "cat /tmp/pool-real");
  ASSERT_TRUE(seen.ok());
  ASSERT_TRUE(mgr_->WaitBranch(*seen, 30s).ok());
  auto info = mgr_->ShowBranch(*seen);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->result.has_value()) << info->error;
  EXPECT_EQ(info->result->stdout_data, "real\n");
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
  mgr_->WaitForDiscards();
  auto st = mgr_->pool_stats();
  EXPECT_EQ(st.ready, 0u);
  EXPECT_EQ(st.filling, 0u);
  EXPECT_EQ(BranchDirs(), 0u) << "warm sandboxes outlived their session";
  auto mounts = MountsUnder(mgr_->store().BranchDir(""));
  ASSERT_TRUE(mounts.ok());
  EXPECT_TRUE(mounts->empty()) << (*mounts)[0];
}

// The pool follows what the session's heads are asked for (issue 15: "the
// pool size follows the launch rule's expected k"): a new session's pool
// starts full (2 here); a session that only commits (one sandbox a head:
// its own run) keeps one ready; one that speculates twice and commits
// (three a head) goes back to the most.
TEST_F(SessionPoolTest, ThePoolHoldsWhatTheSessionsHeadsAreAskedFor) {
  std::string s = NewSession();
  ASSERT_TRUE(WaitReady(2)) << "a new session's pool does not start full";
  for (const char* cmd : {"echo one", "echo two"}) {
    EXPECT_EQ(MustCommit(s, cmd).exit_code, 0);
    ASSERT_TRUE(WaitReady(1)) << "after `" << cmd << "` (one sandbox a head) the pool has "
                              << mgr_->pool_stats().ready << " ready, " << mgr_->pool_stats().filling
                              << " filling";
  }
  mgr_->WaitForDiscards();
  EXPECT_EQ(BranchDirs(), 1u);
  for (int round = 0; round < 2; ++round) {
    for (const char* guess : {"echo x", "echo y"}) {
      auto b = mgr_->Speculate(s, guess);
      ASSERT_TRUE(b.ok()) << b.error().ToString();
    }
    EXPECT_EQ(MustCommit(s, "echo z").stdout_data, "z\n");
  }
  EXPECT_TRUE(WaitReady(2)) << "after heads asked for three sandboxes each the pool has "
                            << mgr_->pool_stats().ready << " ready, " << mgr_->pool_stats().filling
                            << " filling";
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
}

// A speculate's take is made again by the branch's worker once the action
// has started (session_manager.cpp RunBranch, docs/benchmarks.md: a fill
// started by Speculate itself took a core from the branch's start), and
// also when the branch ends before its action ever ran: here the second
// branch waits for the one running slot and is discarded there.
TEST_F(SessionPoolTest, WhatASpeculateTookIsMadeAgainWhetherItsActionRanOrNot) {
  policy::Policy p = policy::DefaultPolicy();
  p.speculation.max_concurrent_branches = 1;
  std::string s = NewSession(p);
  ASSERT_TRUE(WaitReady(2)) << "a new session's pool does not start full";
  const uint64_t hits = mgr_->pool_stats().hits;
  auto running = mgr_->Speculate(s, "sleep 30");
  ASSERT_TRUE(running.ok()) << running.error().ToString();
  // Its action runs, and the pool holds what this head may still be asked
  // for (PoolTarget: at least one, for the commit that ends the head).
  bool started = false;
  for (int i = 0; i < 3000 && !started; ++i) {
    auto r = mgr_->ShowBranch(*running);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    started = r->state == BranchState::kRunning;
    if (!started) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(started) << "the first branch never ran";
  ASSERT_TRUE(WaitReady(1)) << "after one take the pool has " << mgr_->pool_stats().ready << " ready";
  auto waiting = mgr_->Speculate(s, "echo never");
  ASSERT_TRUE(waiting.ok()) << waiting.error().ToString();
  EXPECT_EQ(mgr_->pool_stats().hits, hits + 2) << "both branches should have taken a warm sandbox";
  auto w = mgr_->ShowBranch(*waiting);
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  EXPECT_EQ(w->state, BranchState::kStarting) << "the second branch should wait for the running slot";
  ASSERT_TRUE(mgr_->DiscardBranch(*waiting).ok());
  // The second take emptied the pool; only its unrun branch's end makes
  // the head's one sandbox again.
  EXPECT_TRUE(WaitReady(1)) << "after one take ran and one was discarded unrun the pool has "
                            << mgr_->pool_stats().ready << " ready, " << mgr_->pool_stats().filling
                            << " filling";
  ASSERT_TRUE(mgr_->DiscardBranch(*running).ok());
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
}

TEST_F(SessionPoolTest, SessionsWithLossyPathsNeverPool) {
  std::string lossy = Scratch() + "-pool-lossy";
  ASSERT_TRUE(MakeDirs(lossy).ok());
  policy::Policy p = policy::DefaultPolicy();
  p.paths.push_back({lossy, policy::PathMode::kLossy, "pool", policy::Compensation::kRestore, ""});
  std::string s = NewSession(p);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(MustCommit(s, "echo x > " + lossy + "/f; cat " + lossy + "/f").stdout_data, "x\n");
  // A fill counts as filling from the moment it is posted (RefillPool).
  EXPECT_EQ(mgr_->pool_stats().ready + mgr_->pool_stats().filling, 0u);
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
  ASSERT_TRUE(RemoveTree(lossy).ok());
}

}  // namespace
}  // namespace specula::core::testing
