// What a branch did outlives it (issue 5, branch.show): once a branch is
// discarded, promoted or failed, ShowBranch reads its record, which must
// still carry the effect journal (the instrumentation report), the upper
// size, the error and why it ended. Real sandboxes and the real tracer.
#include <unistd.h>

#include <gtest/gtest.h>

#include "core_test_util.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

class BranchRecordTest : public CoreFixture {
 protected:
  std::string SpeculateAndWait(const std::string& session, const std::string& cmd) {
    auto b = mgr_->Speculate(session, cmd);
    EXPECT_TRUE(b.ok()) << b.error().ToString();
    if (!b.ok()) return "";
    EXPECT_TRUE(mgr_->WaitBranch(*b, 30s).ok());
    return *b;
  }
  static bool Untraced(const nlohmann::json& report) {
    for (const auto& f : report["flags"]) {
      if (f == "untraced") return true;
    }
    return false;
  }
  // The journal has an effect on `path` (the tracer's paths are absolute).
  static bool JournalHas(const nlohmann::json& report, const std::string& path) {
    for (const auto& e : report["effects"]) {
      if (e.value("path", std::string()).find(path) != std::string::npos) return true;
    }
    return false;
  }
};

TEST_F(BranchRecordTest, DiscardedBranchKeepsItsJournalUpperSizeAndReason) {
  std::string s = NewSession();
  std::string path = Scratch() + "-record-discarded";
  std::string b = SpeculateAndWait(s, "echo written > " + path);
  ASSERT_FALSE(b.empty());
  MustCommit(s, "true");  // a different command: the branch is discarded

  auto info = mgr_->ShowBranch(b);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->state, BranchState::kDiscarded);
  EXPECT_EQ(info->reason, "discarded: commit of a different command");
  ASSERT_TRUE(info->result.has_value());
  EXPECT_EQ(info->result->exit_code, 0);
  EXPECT_GT(info->upper_bytes, 0u) << "the branch wrote a file into its upper";
  EXPECT_TRUE(info->error.empty()) << info->error;
  ASSERT_TRUE(info->report.has_value()) << "the report must outlive the branch";
  EXPECT_EQ(::access(path.c_str(), F_OK), -1) << "a discarded branch's write reached the host";
  // ListBranches reads the same record.
  auto list = mgr_->ListBranches(s);
  ASSERT_TRUE(list.ok());
  bool listed = false;
  for (const auto& x : *list) {
    if (x.id != b) continue;
    listed = true;
    EXPECT_EQ(x.reason, info->reason);
    EXPECT_TRUE(x.report.has_value());
  }
  EXPECT_TRUE(listed);
  if (Untraced(*info->report)) GTEST_SKIP() << "effect tracer refused by this kernel";
  EXPECT_TRUE(JournalHas(*info->report, path)) << info->report->dump();
}

TEST_F(BranchRecordTest, PromotedBranchAndNonSpeculativeRunKeepTheirReports) {
  std::string s = NewSession();
  std::string hit_path = Scratch() + "-record-hit";
  std::string b = SpeculateAndWait(s, "echo hit > " + hit_path);
  ASSERT_FALSE(b.empty());
  auto c = MustCommit(s, "echo hit > " + hit_path);
  ASSERT_TRUE(c.hit);
  ASSERT_EQ(c.branch, b);
  auto hit = mgr_->ShowBranch(b);
  ASSERT_TRUE(hit.ok()) << hit.error().ToString();
  EXPECT_EQ(hit->state, BranchState::kPromoted);
  EXPECT_EQ(hit->reason, "promoted by commit");
  EXPECT_GT(hit->upper_bytes, 0u);
  ASSERT_TRUE(hit->report.has_value());

  // A miss runs the command itself as a branch of its own; its record is
  // as complete as a speculated one's.
  std::string miss_path = Scratch() + "-record-miss";
  auto m = MustCommit(s, "echo miss > " + miss_path);
  ASSERT_FALSE(m.hit);
  auto run = mgr_->ShowBranch(m.branch);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->state, BranchState::kPromoted);
  EXPECT_EQ(run->reason, "promoted by commit");
  ASSERT_TRUE(run->result.has_value());
  EXPECT_EQ(run->result->exit_code, 0);
  ASSERT_TRUE(run->report.has_value());

  if (Untraced(*hit->report)) GTEST_SKIP() << "effect tracer refused by this kernel";
  EXPECT_TRUE(JournalHas(*hit->report, hit_path)) << hit->report->dump();
  EXPECT_TRUE(JournalHas(*run->report, miss_path)) << run->report->dump();
}

TEST_F(BranchRecordTest, AbortRollbackAndRestartSayWhyTheyDiscarded) {
  std::string s = NewSession();
  std::string aborted = SpeculateAndWait(s, "echo a");
  ASSERT_TRUE(mgr_->Abort(s).ok());
  auto a = mgr_->ShowBranch(aborted);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->state, BranchState::kDiscarded);
  EXPECT_EQ(a->reason, "discarded: abort");

  auto root = mgr_->ShowSession(s);
  ASSERT_TRUE(root.ok());
  std::string rolled = SpeculateAndWait(s, "echo r");
  ASSERT_TRUE(mgr_->Rollback(s, root->record.head).ok());
  auto r = mgr_->ShowBranch(rolled);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reason, "discarded: rollback");

  // A branch still live when the manager goes (the daemon stopping).
  std::string left = SpeculateAndWait(s, "echo left");
  mgr_.reset();  // before a new one opens the state dir, as a restarted daemon would
  OpenManager();
  auto l = mgr_->ShowBranch(left);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  EXPECT_EQ(l->state, BranchState::kDiscarded);
  EXPECT_EQ(l->reason, "discarded: daemon stopped");
  ASSERT_TRUE(l->result.has_value());
  EXPECT_EQ(l->result->stdout_data, "left\n");
  EXPECT_TRUE(l->report.has_value());
}

TEST_F(BranchRecordTest, FailedBranchKeepsItsError) {
  // A rootless session base that does not hold a shell: the fork or the run
  // fails, which is a failed branch (not a done one with an exit code).
  char tmpl[] = "/var/tmp/specula-record-empty-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string empty = tmpl;
  std::string s = NewSession(policy::DefaultPolicy(), policy::PromoteTarget::kLayer, empty);
  std::string b = SpeculateAndWait(s, "echo never");
  auto info = mgr_->ShowBranch(b);
  ASSERT_TRUE(info.ok());
  if (info->state == BranchState::kFailed) {
    ASSERT_TRUE(mgr_->Abort(s).ok());  // a failed branch is still live until discarded
    auto after = mgr_->ShowBranch(b);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->state, BranchState::kDiscarded);
    EXPECT_FALSE(after->error.empty()) << "the failure must outlive the branch";
    EXPECT_EQ(after->reason, "discarded: abort");
  } else {
    ADD_FAILURE() << "expected the branch over an empty base to fail, it was " << ToString(info->state);
  }
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
  ::rmdir(empty.c_str());
}

}  // namespace
}  // namespace specula::core::testing
