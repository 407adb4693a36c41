// The engine's bookkeeping against a scripted in-memory environment, and the
// replay actor's timing (a kept pre-launched call finishes earlier).
#include "agents/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "agents/builtin_speculators.h"
#include "agents/replay_actor.h"

namespace specula::agents {
namespace {

using namespace std::chrono_literals;

// Every action takes `action_ms` and prints "out:<command>". Branches finish
// on their own clock; a commit promotes a matching branch (waiting for it).
class FakeEnvironment : public Environment {
 public:
  explicit FakeEnvironment(double action_ms) : action_ms_(action_ms) {}

  Result<BranchId> Speculate(const std::string& command, std::chrono::milliseconds) override {
    BranchId id = "fb" + std::to_string(next_++);
    branches_[id] = {TrimCommand(command), Clock::now()};
    ++speculated_;
    return id;
  }
  Result<CommitResult> Commit(const std::string& command, std::chrono::milliseconds) override {
    CommitResult c;
    c.outcome = Outcome(command);
    for (const auto& [id, b] : branches_) {
      if (b.command != TrimCommand(command)) continue;
      auto done = b.start + Dur();
      auto now = Clock::now();
      double waited = 0;
      if (now < done) {
        waited = std::chrono::duration<double, std::milli>(done - now).count();
        std::this_thread::sleep_until(done);
      }
      c.hit = true;
      c.branch = id;
      c.saved_ms = action_ms_ - waited;
      break;
    }
    if (!c.hit) std::this_thread::sleep_for(Dur());
    branches_.clear();
    committed_.push_back(command);
    return c;
  }
  Status Abort() override {
    branches_.clear();
    return Status::Ok();
  }
  Result<std::optional<ActionOutcome>> PeekBranch(const BranchId& id) override {
    auto it = branches_.find(id);
    if (it == branches_.end()) return Error(Code::kNotFound, "no branch");
    if (Clock::now() < it->second.start + Dur()) return std::optional<ActionOutcome>();
    return std::optional<ActionOutcome>(Outcome(it->second.command));
  }
  std::string Name() const override { return "fake"; }
  bool SupportsSpeculation() const override { return true; }

  int speculated_ = 0;
  std::vector<std::string> committed_;

 private:
  struct Branch {
    std::string command;
    Clock::time_point start;
  };
  Clock::duration Dur() const {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(action_ms_));
  }
  ActionOutcome Outcome(const std::string& cmd) const {
    return ActionOutcome{0, 0, "out:" + TrimCommand(cmd), "", false, action_ms_};
  }
  double action_ms_;
  int next_ = 1;
  std::map<BranchId, Branch> branches_;
};

Trajectory Steps(int n, double think_ms) {
  Trajectory t;
  t.name = "fake";
  t.task = "do things";
  for (int i = 0; i < n; ++i) t.steps.push_back({"step " + std::to_string(i), think_ms, std::nullopt});
  return t;
}

std::vector<std::string> Outputs(const RunReport& r) {
  std::vector<std::string> out;
  for (const auto& s : r.steps) {
    if (!s.done_step) out.push_back(s.command + "=>" + s.outcome.stdout_text);
  }
  return out;
}

RunReport RunWith(const Trajectory& t, Speculator* spec, int k, double action_ms) {
  FakeEnvironment env(action_ms);
  ReplayActor actor(t, ReplayTiming{});
  EngineOptions o;
  o.max_branches = k;
  o.priors.saving_ms = 100;
  o.priors.branch_cost_ms = 1;
  Engine e(env, actor, spec, o);
  auto r = e.Run(t.task);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(env.committed_.size(), t.steps.size());
  return r.ok() ? *r : RunReport{};
}

TEST(ReplayActorTest, KeptPrelaunchedCallFinishesEarlier) {
  Trajectory t = Steps(3, 300);
  ReplayActor actor(t, ReplayTiming{});
  History h;
  h.task = t.task;
  auto t0 = Clock::now();
  // Pre-launched at t0 on the speculated history (step 0 done).
  History speculated = h;
  speculated.turns.push_back({"step 0", ActionOutcome{}});
  auto pre = actor.Launch(speculated);
  ASSERT_TRUE(pre.ok());
  std::this_thread::sleep_until(t0 + 200ms);  // the commit confirms it at ~t0+200ms
  auto fresh = actor.Launch(speculated);     // what a non-speculative agent launches now
  ASSERT_TRUE(fresh.ok());
  // At t0+340ms the kept call (ready at t0+300) has answered; the fresh one
  // (ready at ~t0+500) has not.
  auto kept = (*pre)->WaitUntil(t0 + 340ms);
  ASSERT_TRUE(kept.has_value());
  ASSERT_TRUE(kept->ok());
  EXPECT_EQ((*kept)->command, "step 1");
  EXPECT_FALSE((*fresh)->WaitUntil(t0 + 340ms).has_value());
  auto later = (*fresh)->WaitUntil(t0 + 2s);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ((**later).command, "step 1");
  // A cancelled call reports aborted.
  (*fresh)->Cancel();
  auto c = (*fresh)->WaitUntil(Clock::now());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->error().code(), Code::kAborted);
}

TEST(ReplayActorTest, FinishesAfterTheLastStepAndModelsThinkTime) {
  Trajectory t = Steps(1, 10);
  ReplayTiming timing;
  timing.mode = ReplayTiming::Mode::kModelled;
  timing.base_ms = 100;
  timing.per_kib_ms = 1024;  // 1 ms per byte
  ReplayActor actor(t, timing);
  History h;
  h.task = "abcd";  // 4 bytes
  EXPECT_DOUBLE_EQ(actor.ThinkMs(0, h), 104);
  h.turns.push_back({"step 0", ActionOutcome{0, 0, "xy", "", false, 0}});
  auto call = actor.Launch(h);
  ASSERT_TRUE(call.ok());
  auto d = (*call)->WaitUntil(Clock::now() + 5s);
  ASSERT_TRUE(d.has_value() && d->ok());
  EXPECT_TRUE((*d)->done);
  h.turns.push_back({"extra", ActionOutcome{}});
  EXPECT_FALSE(actor.Launch(h).ok());
}

TEST(EngineTest, SpeculationOffRunsEveryStepSequentially) {
  Trajectory t = Steps(4, 20);
  RunReport r = RunWith(t, nullptr, 3, 5);
  EXPECT_TRUE(r.completed);
  EXPECT_EQ(r.Hits(), 0u);
  EXPECT_EQ(r.Branches(), 0u);
  ASSERT_EQ(Outputs(r).size(), 4u);
  EXPECT_EQ(Outputs(r)[2], "step 2=>out:step 2");
}

TEST(EngineTest, PerfectOracleHitsEveryOtherStepAndKeepsPrelaunches) {
  // Think 150 ms, actions 5 ms: every branch finishes long before the actor
  // decides, so its next call is pre-launched and kept on the hit; the hit
  // uses up the next step's window (paper's rule): hits at 0, 2, 4.
  Trajectory t = Steps(6, 150);
  OracleSpeculator oracle(t, {1.0, -1, 1});
  RunReport r = RunWith(t, &oracle, 1, 5);
  RunReport off = RunWith(t, nullptr, 1, 5);
  EXPECT_EQ(Outputs(r), Outputs(off));  // lossless
  ASSERT_EQ(r.steps.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const auto& s = r.steps[i];
    bool even = i % 2 == 0;
    EXPECT_EQ(s.hit, even) << i;
    EXPECT_EQ(s.prelaunch_kept, even) << i;
    EXPECT_EQ(s.window_skipped, !even) << i;
    EXPECT_EQ(s.branches.size(), even ? 1u : 0u) << i;
    if (even) {
      EXPECT_TRUE(s.branches[0].promoted);
      EXPECT_TRUE(s.branches[0].finished_early);
      EXPECT_GT(s.head_start_ms, 0);
      EXPECT_GT(s.saved_ms, 0);
      EXPECT_EQ(s.wasted_branch_ms, 0);
    }
  }
  EXPECT_EQ(r.Kept(), 3u);
  EXPECT_EQ(r.Prelaunched(), 3u);
  EXPECT_GT(r.SavedMs(), 0);
}

TEST(EngineTest, SpeculateAfterHitOptionFillsEveryWindow) {
  Trajectory t = Steps(4, 150);
  OracleSpeculator oracle(t, {1.0, -1, 1});
  FakeEnvironment env(5);
  ReplayActor actor(t, ReplayTiming{});
  EngineOptions o;
  o.max_branches = 1;
  o.speculate_after_hit = true;
  o.priors.saving_ms = 100;
  o.priors.branch_cost_ms = 1;
  Engine e(env, actor, &oracle, o);
  auto r = e.Run(t.task);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Hits(), 4u);
}

TEST(EngineTest, AllMissOracleWastesButStaysLossless) {
  Trajectory t = Steps(5, 60);
  OracleSpeculator oracle(t, {0.0, /*reported_confidence=*/0.5, 3});
  RunReport r = RunWith(t, &oracle, 2, 5);
  RunReport off = RunWith(t, nullptr, 2, 5);
  EXPECT_EQ(Outputs(r), Outputs(off));
  EXPECT_EQ(r.Hits(), 0u);
  EXPECT_EQ(r.Kept(), 0u);
  EXPECT_GT(r.Branches(), 0u);
  EXPECT_GT(r.Prelaunched(), 0u);
  size_t cancelled = 0;
  for (const auto& s : r.steps) {
    cancelled += s.cancelled_calls;
    for (const auto& b : s.branches) EXPECT_FALSE(b.promoted);
  }
  EXPECT_EQ(cancelled, r.Prelaunched());
  EXPECT_GT(r.WastedBranchMs(), 0);
  EXPECT_GT(r.WastedCallMs(), 0);
}

TEST(EngineTest, LaunchRuleLimitsBranchesWhenTheyCostMoreThanTheyGain) {
  Trajectory t = Steps(3, 30);
  OracleSpeculator oracle(t, {0.5, -1, 3});
  FakeEnvironment env(5);
  ReplayActor actor(t, ReplayTiming{});
  EngineOptions o;
  o.max_branches = 3;
  o.priors.saving_ms = 100;        // D
  o.priors.branch_cost_ms = 10000;  // c: far above q*D
  o.priors.prior_weight = 1e9;      // measurements cannot move it
  Engine e(env, actor, &oracle, o);
  auto r = e.Run(t.task);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(env.speculated_, 0);
  for (const auto& s : r->steps) EXPECT_EQ(s.launch_count, 0u);
}

// Proposes nothing at first; its candidate (the truth) arrives later through
// Refresh, as a model speculator's streamed reply would.
class LateSpeculator : public Speculator {
 public:
  explicit LateSpeculator(Trajectory t) : t_(std::move(t)) {}
  Result<std::vector<Candidate>> Propose(const speculators::History& h, int) override {
    at_ = h.steps.size();
    since_ = Clock::now();
    sent_ = false;
    return std::vector<Candidate>{};
  }
  std::optional<std::vector<Candidate>> Refresh() override {
    if (sent_ || at_ >= t_.steps.size() || Clock::now() - since_ < 10ms) return std::nullopt;
    sent_ = true;
    return std::vector<Candidate>{{t_.steps[at_].command, 0.9, "late"}};
  }
  void Cancel() override { ++cancels; }
  std::string Name() const override { return "late"; }
  int cancels = 0;

 private:
  Trajectory t_;
  size_t at_ = 0;
  Clock::time_point since_;
  bool sent_ = false;
};

TEST(EngineTest, CandidatesArrivingLaterAreLaunchedToo) {
  Trajectory t = Steps(4, 80);
  LateSpeculator late(t);
  FakeEnvironment env(5);
  ReplayActor actor(t, ReplayTiming{});
  EngineOptions o;
  o.max_branches = 2;
  o.prelaunch = false;
  o.priors.saving_ms = 100;
  o.priors.branch_cost_ms = 1;
  Engine e(env, actor, &late, o);
  auto r = e.Run(t.task);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Hits(), 4u);
  size_t refreshed = 0;
  for (const auto& s : r->steps) refreshed += s.refreshed;
  EXPECT_EQ(refreshed, 4u);
  EXPECT_GE(late.cancels, 4);  // told when the actor decided
}

TEST(EngineTest, BranchCostIsTheMeasuredDiscardTimeOfMisses) {
  // c starts far above what a discard costs; every step misses, the engine
  // times the discard of its branches and c follows the measurement.
  Trajectory t = Steps(6, 30);
  OracleSpeculator oracle(t, {0.0, 0.5, 3});
  FakeEnvironment env(2);
  ReplayActor actor(t, ReplayTiming{});
  EngineOptions o;
  o.max_branches = 2;
  o.use_launch_rule = false;
  o.priors.saving_ms = 100;
  o.priors.branch_cost_ms = 1000;
  o.priors.prior_weight = 1;
  Engine e(env, actor, &oracle, o);
  auto r = e.Run(t.task);
  ASSERT_TRUE(r.ok());
  size_t measured = 0;
  for (const auto& s : r->steps) {
    if (s.done_step) continue;
    if (s.discard_ms >= 0) {
      ++measured;
      EXPECT_GE(s.marginal_cost_ms, 0);
      EXPECT_LT(s.marginal_cost_ms, 50);
    }
  }
  EXPECT_GE(measured, 5u);
  // The last steps use the measured c, not the 1000 ms prior.
  EXPECT_LT(r->steps[r->steps.size() - 2].model_branch_cost_ms, 200);
  EXPECT_EQ(r->Hits(), 0u);
}

}  // namespace
}  // namespace specula::agents
