#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "runtime/api/wire.h"
#include "runtime/speculation/proposer.h"
#include "runtime/speculation/speculation.h"

namespace specula::speculation {
namespace {

using speculators::Candidate;
using speculators::History;
using speculators::Step;

// Proposes a fixed list and remembers the histories it was shown.
class FakeSpeculator final : public speculators::Speculator {
 public:
  explicit FakeSpeculator(std::vector<Candidate> c, std::vector<History>* seen = nullptr)
      : candidates_(std::move(c)), seen_(seen) {}
  Result<std::vector<Candidate>> Propose(const History& h, int) override {
    if (seen_ != nullptr) seen_->push_back(h);
    if (fail_) return Error(Code::kUnavailable, "model endpoint down");
    return candidates_;
  }
  std::string Name() const override { return "fake"; }
  bool fail_ = false;

 private:
  std::vector<Candidate> candidates_;
  std::vector<History>* seen_;
};

api::SpeculationConfig Config(std::string launch, uint32_t k = 3, double min_p = 0) {
  api::SpeculationConfig c;
  c.speculator = "builtin";
  c.k = k;
  c.min_p = min_p;
  c.launch = std::move(launch);
  return c;
}

Step MakeStep(std::string command, std::string out = "", std::string cwd = "/") {
  Step s;
  s.command = std::move(command);
  s.stdout_text = std::move(out);
  s.cwd = std::move(cwd);
  return s;
}

TEST(MarginalBranchCost, AnIdleCoreCostsOnlyTheLaunch) {
  EXPECT_DOUBLE_EQ(MarginalBranchCostMs(1.5, 3, 1000, kSpeculativeShare), 3);
  EXPECT_DOUBLE_EQ(MarginalBranchCostMs(1.0, 3, 1000, kSpeculativeShare), 3);
  // No idle core: the branch takes its CPU share of its run time.
  EXPECT_DOUBLE_EQ(MarginalBranchCostMs(0, 3, 1000, 0.2), 3 + 200);
  EXPECT_DOUBLE_EQ(MarginalBranchCostMs(0.5, 3, 1000, 0.2), 3 + 100);
}

TEST(Proposer, LaunchAllKeepsEveryCandidateOverMinPAndNamesTheSource) {
  Proposer p(Config("all", 3, 0.1),
             std::make_unique<FakeSpeculator>(std::vector<Candidate>{
                 {"cat run.sh", 0.6, "view-written"}, {"ls", 0.05, "repeat"}, {"bash run.sh", 0.3, "run-written"}}));
  auto l = p.Next(2);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].command, "cat run.sh");  // best first
  EXPECT_EQ((*l)[0].origin.source, "speculator:fake");
  EXPECT_DOUBLE_EQ((*l)[0].origin.confidence, 0.6);
  EXPECT_EQ((*l)[0].origin.rule, "view-written");
  EXPECT_EQ((*l)[1].command, "bash run.sh");
}

TEST(Proposer, TheRuleLaunchesWhenTheSavingOutweighsTheMeasuredCost) {
  std::vector<Candidate> cands{{"make", 0.5, "r"}, {"make test", 0.01, "r"}};
  Proposer p(Config("rule"), std::make_unique<FakeSpeculator>(cands));
  // Commits that take 2 s: a hit saves about that much; a launch costs a few ms.
  for (int i = 0; i < 3; ++i) p.Observe(MakeStep("make"), "c" + std::to_string(i), false, false, 2000, 0);
  for (int i = 0; i < 3; ++i) p.ObserveLaunch(2);
  auto idle = p.Next(/*idle_cores=*/1);
  ASSERT_TRUE(idle.ok());
  // 0.5 * D is worth a launch; 0.01 more hit probability (~20 ms) is worth a
  // second one only while the cost is a few ms.
  ASSERT_GE(idle->size(), 1u);
  EXPECT_EQ((*idle)[0].command, "make");
  EXPECT_GT(p.Report().saving_ms, 1000);
  EXPECT_LT(p.Report().cost_ms, 10);
  // No idle core: each branch now costs its CPU share of a 2 s run (~400
  // ms), so the unlikely candidate is no longer worth it.
  auto busy = p.Next(/*idle_cores=*/0);
  ASSERT_TRUE(busy.ok());
  ASSERT_EQ(busy->size(), 1u);
  EXPECT_GT(p.Report().cost_ms, 100);
}

TEST(Proposer, FastCommandsAndUnlikelyCandidatesLaunchNothingUnderTheRule) {
  Proposer p(Config("rule"), std::make_unique<FakeSpeculator>(std::vector<Candidate>{{"ls", 0.001, "r"}}));
  for (int i = 0; i < 20; ++i) p.Observe(MakeStep("ls"), "c" + std::to_string(i), false, false, 5, 0);
  for (int i = 0; i < 20; ++i) p.ObserveLaunch(5);
  auto l = p.Next(0);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->empty());
}

TEST(Proposer, HistoryCarriesOutputsAndCwdAndRollbackCutsIt) {
  std::vector<History> seen;
  Proposer p(Config("all"), std::make_unique<FakeSpeculator>(std::vector<Candidate>{{"x", 0.5, ""}}, &seen));
  p.Observe(MakeStep("cd /etc", "", "/etc"), "c1", false, false, 1, 0);
  p.Observe(MakeStep("ls", "hosts\npasswd\n", "/etc"), "c2", false, false, 1, 0);
  ASSERT_TRUE(p.Next(1).ok());
  ASSERT_EQ(seen.back().steps.size(), 2u);
  EXPECT_EQ(seen.back().steps[1].stdout_text, "hosts\npasswd\n");
  EXPECT_EQ(seen.back().steps[1].cwd, "/etc");
  p.Rollback("c1");
  ASSERT_TRUE(p.Next(1).ok());
  ASSERT_EQ(seen.back().steps.size(), 1u);
  EXPECT_EQ(seen.back().steps[0].command, "cd /etc");
  p.Rollback("root");  // made by no step: the session's root
  EXPECT_TRUE(p.history().steps.empty());
}

// A session of thousands of commits: the speculator is shown the newest
// kMaxHistorySteps steps and told how many went before (a round copies the
// history, and each step holds up to 16 KiB of output).
TEST(Proposer, ALongSessionKeepsANewestWindowOfSteps) {
  std::vector<History> seen;
  Proposer p(Config("all"), std::make_unique<FakeSpeculator>(std::vector<Candidate>{{"x", 0.5, ""}}, &seen));
  const size_t n = Proposer::kMaxHistorySteps + 100;
  for (size_t i = 0; i < n; ++i) {
    p.Observe(MakeStep("s" + std::to_string(i)), "c" + std::to_string(i), false, false, 1, 0);
  }
  ASSERT_TRUE(p.Next(1).ok());
  ASSERT_EQ(seen.back().steps.size(), Proposer::kMaxHistorySteps);
  EXPECT_EQ(seen.back().first, 100u);
  EXPECT_EQ(seen.back().steps.front().command, "s100");
  EXPECT_EQ(seen.back().steps.back().command, "s" + std::to_string(n - 1));
  // Back to a head inside the window: the steps after it go.
  p.Rollback("c" + std::to_string(n - 11));
  EXPECT_EQ(p.history().first, 100u);
  EXPECT_EQ(p.history().steps.size(), Proposer::kMaxHistorySteps - 10);
  EXPECT_EQ(p.history().steps.back().command, "s" + std::to_string(n - 11));
  // Back past the window: the history starts again.
  p.Rollback("c5");
  EXPECT_TRUE(p.history().steps.empty());
  EXPECT_EQ(p.history().first, 0u);
}

TEST(Proposer, CountsHitsOnlyForItsOwnBranches) {
  Proposer p(Config("all"), std::make_unique<FakeSpeculator>(std::vector<Candidate>{{"x", 0.5, ""}}));
  p.ObserveLaunch(1);
  p.Observe(MakeStep("x"), "c1", true, true, 10, 10);
  p.Observe(MakeStep("y"), "c2", true, false, 10, 10);  // a client's branch
  EXPECT_EQ(p.Report().launched, 1u);
  EXPECT_EQ(p.Report().hits, 1u);
}

TEST(Proposer, TheBuiltinSpeculatorProposesFromAFakeHistory) {
  auto p = Proposer::Create(Config("all", 3));
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  (*p)->Observe(MakeStep("printf 'echo hi\\n' > run.sh", "", "/tmp/w"), "c1", false, false, 5, 0);
  auto l = (*p)->Next(1);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  ASSERT_FALSE(l->empty());
  for (const auto& c : *l) {
    EXPECT_EQ(c.origin.source, "speculator:builtin");
    EXPECT_FALSE(c.command.empty());
  }
}

TEST(Speculation, RoundsRunOffTheCallerAndLaunchThroughTheLauncher) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> launched;  // head, command
  Speculation spec([&](const std::string&, const std::string& head, const Launch& l) -> Result<std::string> {
    std::lock_guard lock(mu);
    launched.emplace_back(head, l.command);
    return "b" + std::to_string(launched.size());
  });
  spec.Enable("s1", std::make_unique<Proposer>(
                        Config("all", 2), std::make_unique<FakeSpeculator>(std::vector<Candidate>{
                                              {"a", 0.5, ""}, {"b", 0.4, ""}, {"c", 0.3, ""}})));
  spec.AfterCreate("s1", "c0");
  spec.Drain();
  spec.AfterCommit("s1", "c1", MakeStep("a"), true, true, 10, 10);
  spec.Drain();
  spec.AfterCommit("nobody", "c9", MakeStep("a"), false, false, 10, 0);  // no speculation: ignored
  spec.Drain();
  std::lock_guard lock(mu);
  ASSERT_EQ(launched.size(), 4u);  // k = 2 per round
  EXPECT_EQ(launched[0], (std::pair<std::string, std::string>{"c0", "a"}));
  EXPECT_EQ(launched[2], (std::pair<std::string, std::string>{"c1", "a"}));
  auto st = spec.Report("s1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->launched, 4u);
  EXPECT_EQ(st->hits, 1u);
  EXPECT_EQ(st->round_head, "c1");  // the last round that finished
  EXPECT_FALSE(spec.Report("nobody"));
}

TEST(Speculation, ErrorsAreKeptForSessionShowAndNeverThrownAtTheCaller) {
  Speculation spec([](const std::string&, const std::string&, const Launch&) -> Result<std::string> {
    return Error(Code::kResourceExhausted, "session already has 8 branches");
  });
  spec.Enable("s1", std::make_unique<Proposer>(
                        Config("all"), std::make_unique<FakeSpeculator>(std::vector<Candidate>{{"a", 0.5, ""}})));
  spec.AfterCommit("s1", "c1", MakeStep("a"), false, false, 10, 0);
  spec.Drain();
  auto st = spec.Report("s1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->launched, 0u);
  EXPECT_NE(st->last_error.find("8 branches"), std::string::npos) << st->last_error;
  EXPECT_EQ(st->round_head, "c1");  // a failed round is over too: a client waiting for it goes on

  auto failing = std::make_unique<FakeSpeculator>(std::vector<Candidate>{});
  failing->fail_ = true;
  spec.Enable("s2", std::make_unique<Proposer>(Config("all"), std::move(failing)));
  spec.AfterCreate("s2", "c0");
  spec.Drain();
  EXPECT_NE(spec.Report("s2")->last_error.find("endpoint down"), std::string::npos);
}

TEST(SpeculationParams, SessionCreateDecodesItStrictly) {
  api::CreateSessionRequest req;
  auto ok = api::DecodeParams(api::Json{{"speculation", {{"speculator", "builtin"}, {"k", 2}, {"min_p", 0.2}}}}, req);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  ASSERT_TRUE(req.speculation);
  EXPECT_EQ(req.speculation->k, 2u);
  EXPECT_DOUBLE_EQ(req.speculation->min_p, 0.2);
  EXPECT_EQ(req.speculation->launch, "rule");
  api::CreateSessionRequest none;
  ASSERT_TRUE(api::DecodeParams(api::Json::object(), none).ok());
  EXPECT_FALSE(none.speculation);
  for (const auto& bad : {api::Json{{"speculation", "builtin"}},
                          api::Json{{"speculation", {{"speculator", "psychic"}}}},
                          api::Json{{"speculation", {{"k", 0}}}},
                          api::Json{{"speculation", {{"k", 17}}}},
                          api::Json{{"speculation", {{"min_p", 1.5}}}},
                          api::Json{{"speculation", {{"launch", "some"}}}},
                          api::Json{{"speculation", {{"speculator", "openai"}, {"model", "m"}}}},
                          api::Json{{"speculation", {{"endpoint", "http://x"}}}},
                          api::Json{{"speculation", {{"kk", 3}}}}}) {
    api::CreateSessionRequest r;
    auto st = api::DecodeParams(bad, r);
    EXPECT_FALSE(st.ok()) << bad.dump();
    if (!st.ok()) {
      EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << bad.dump();
    }
  }
}

TEST(SpeculationParams, TheWireShapesRoundTrip) {
  api::BranchSummary b;
  b.branch = "b1";
  b.origin = api::BranchOrigin{"speculator:builtin", 0.25, "view-written"};
  api::Json j = api::ToJson(b);
  EXPECT_EQ(j["origin"]["source"], "speculator:builtin");
  auto back = api::FromJson<api::BranchSummary>(j, "test");
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->origin);
  EXPECT_DOUBLE_EQ(back->origin->confidence, 0.25);
  EXPECT_FALSE(api::ToJson(api::BranchSummary{}).contains("origin"));  // a client's branch: no origin
}

}  // namespace
}  // namespace specula::speculation
