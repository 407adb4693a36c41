#include "agents/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace specula::agents {

// One launched branch while its step is open.
struct LiveBranch {
  BranchRecord rec;
  Clock::time_point launched;
  std::optional<ActionOutcome> outcome;
  bool failed = false;
  std::unique_ptr<ActorCall> pre;  // the pre-launched call for the next step
};

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

template <typename F>
double Sum(const std::vector<StepRecord>& steps, F f) {
  double s = 0;
  for (const auto& st : steps) s += f(st);
  return s;
}

}  // namespace

size_t RunReport::Hits() const {
  return static_cast<size_t>(Sum(steps, [](const StepRecord& s) { return s.hit ? 1.0 : 0.0; }));
}
size_t RunReport::Branches() const {
  return static_cast<size_t>(
      Sum(steps, [](const StepRecord& s) { return static_cast<double>(s.branches.size()); }));
}
size_t RunReport::Prelaunched() const {
  return static_cast<size_t>(
      Sum(steps, [](const StepRecord& s) { return static_cast<double>(s.prelaunched_calls); }));
}
size_t RunReport::Kept() const {
  return static_cast<size_t>(
      Sum(steps, [](const StepRecord& s) { return s.prelaunch_kept ? 1.0 : 0.0; }));
}
double RunReport::SavedMs() const {
  return Sum(steps, [](const StepRecord& s) { return s.saved_ms; });
}
double RunReport::WastedBranchMs() const {
  return Sum(steps, [](const StepRecord& s) { return s.wasted_branch_ms; });
}
double RunReport::WastedCallMs() const {
  return Sum(steps, [](const StepRecord& s) { return s.wasted_call_ms; });
}

nlohmann::json RunReport::ToJson() const {
  using Json = nlohmann::json;
  Json j = {{"actor", actor},
            {"speculator", speculator},
            {"synthetic", synthetic},
            {"environment", environment},
            {"completed", completed},
            {"total_ms", total_ms},
            {"hits", Hits()},
            {"branches", Branches()},
            {"prelaunched_calls", Prelaunched()},
            {"prelaunch_kept", Kept()},
            {"saved_ms", SavedMs()},
            {"wasted_branch_ms", WastedBranchMs()},
            {"wasted_call_ms", WastedCallMs()}};
  Json arr = Json::array();
  for (const auto& s : steps) {
    Json b = Json::array();
    for (const auto& br : s.branches) {
      b.push_back({{"id", br.id}, {"command", br.command}, {"confidence", br.confidence},
                   {"source", br.source}, {"cost_ms", br.cost_ms},
                   {"finished_early", br.finished_early}, {"prelaunched", br.prelaunched},
                   {"promoted", br.promoted}});
    }
    arr.push_back({{"index", s.index}, {"command", s.command}, {"exit_code", s.outcome.exit_code},
                   {"hit", s.hit}, {"window_skipped", s.window_skipped},
                   {"candidates", s.candidates}, {"launch_count", s.launch_count}, {"q", s.q},
                   {"D_ms", s.model_saving_ms}, {"c_ms", s.model_branch_cost_ms},
                   {"branches", b}, {"refused", s.refused}, {"refreshed", s.refreshed},
                   {"launch_ms", s.launch_ms}, {"commit_overhead_ms", s.commit_overhead_ms},
                   {"marginal_cost_ms", s.marginal_cost_ms}, {"discard_ms", s.discard_ms},
                   {"prelaunch_kept", s.prelaunch_kept},
                   {"prelaunched_calls", s.prelaunched_calls},
                   {"cancelled_calls", s.cancelled_calls}, {"actor_wait_ms", s.actor_wait_ms},
                   {"commit_ms", s.commit_ms}, {"hidden_action_ms", s.hidden_action_ms},
                   {"head_start_ms", s.head_start_ms}, {"saved_ms", s.saved_ms},
                   {"branch_cost_ms", s.branch_cost_ms}, {"wasted_branch_ms", s.wasted_branch_ms},
                   {"wasted_call_ms", s.wasted_call_ms}, {"lossy_effects", s.lossy_effects},
                   {"flags", s.flags}, {"mismatch", s.mismatch}, {"done_step", s.done_step}});
  }
  j["steps"] = std::move(arr);
  return j;
}

void Engine::LaunchCandidates(std::vector<Candidate> proposed, StepRecord& rec,
                              std::vector<LiveBranch>& live, size_t step) {
  auto cands = NormalizeCandidates(std::move(proposed), options_.max_branches);
  std::vector<double> p;
  for (const auto& c : cands) p.push_back(c.confidence);
  rec.candidates = std::max(rec.candidates, cands.size());
  rec.model_saving_ms = cost_.saving_ms();
  rec.model_branch_cost_ms = cost_.branch_cost_ms();
  size_t m = options_.use_launch_rule
                 ? ChooseLaunchCount(p, options_.max_branches, rec.model_saving_ms, rec.model_branch_cost_ms)
                 : cands.size();
  rec.launch_count = std::max(rec.launch_count, m);
  rec.q = std::max(rec.q, HitProbability(p, m));
  for (size_t j = 0; j < m && live.size() < static_cast<size_t>(options_.max_branches); ++j) {
    bool running = std::any_of(live.begin(), live.end(),
                               [&](const LiveBranch& lb) { return lb.rec.command == cands[j].command; });
    if (running) continue;
    auto id = env_.Speculate(cands[j].command, options_.action_timeout);
    if (!id.ok()) {
      ++rec.refused;
      spdlog::debug("step {}: speculate `{}` refused: {}", step, cands[j].command, id.error().ToString());
      continue;
    }
    LiveBranch lb;
    lb.rec.id = *id;
    lb.rec.command = cands[j].command;
    lb.rec.confidence = cands[j].confidence;
    lb.rec.source = cands[j].source;
    lb.launched = Clock::now();
    live.push_back(std::move(lb));
  }
}

Engine::Engine(Environment& env, Actor& actor, Speculator* speculator, EngineOptions options)
    : env_(env), actor_(actor), speculator_(speculator), options_(options), cost_(options.priors) {}

Result<RunReport> Engine::Run(const std::string& task) {
  RunReport report;
  report.actor = actor_.Name();
  report.speculator = speculator_ ? speculator_->Name() : "off";
  report.synthetic = speculator_ && speculator_->Synthetic();
  report.environment = env_.Name();
  const bool speculate = speculator_ && options_.max_branches > 0 && env_.SupportsSpeculation();

  History history;
  history.task = task;
  // The speculator's view of the same history, grown with every commit.
  speculators::History spec_history;
  spec_history.agent = options_.agent;
  spec_history.task = task;
  spec_history.task_id = options_.task_id;
  auto run_start = Clock::now();
  SPECULA_ASSIGN_OR_RETURN(std::unique_ptr<ActorCall> call, actor_.Launch(history));
  bool window_used = false;

  for (size_t step = 0;; ++step) {
    if (step >= options_.max_steps) {
      (void)env_.Abort();
      return Error(Code::kResourceExhausted, "agent ran more than " +
                                                 std::to_string(options_.max_steps) + " steps");
    }
    StepRecord rec;
    rec.index = step;
    auto step_start = Clock::now();
    std::vector<LiveBranch> live;

    // (a) Speculate on the committed head while the actor thinks.
    if (speculate && window_used && !options_.speculate_after_hit) {
      rec.window_skipped = true;
    } else if (speculate) {
      auto proposed = speculator_->Propose(spec_history, options_.max_branches);
      if (!proposed.ok()) {
        spdlog::warn("step {}: speculator {}: {}", step, speculator_->Name(),
                     proposed.error().ToString());
      } else {
        auto launch_start = Clock::now();
        LaunchCandidates(std::move(*proposed), rec, live, step);
        rec.launch_ms = Ms(Clock::now() - launch_start);
      }
    }
    window_used = false;

    // Wait for the actor; meanwhile (b) pre-launch its next call from every
    // branch that finishes.
    std::optional<Result<ActorDecision>> decided;
    bool decided_at_once = true;  // the actor had decided before the launches were done
    while (!(decided = call->WaitUntil(Clock::now() + options_.poll_interval))) {
      decided_at_once = false;
      // Candidates that arrived later (a model speculator's streamed reply).
      if (speculate && !rec.window_skipped) {
        if (auto more = speculator_->Refresh()) {
          size_t before = live.size();
          LaunchCandidates(std::move(*more), rec, live, step);
          rec.refreshed += live.size() - before;
        }
      }
      for (auto& lb : live) {
        if (lb.outcome || lb.failed) continue;
        auto peek = env_.PeekBranch(lb.rec.id);
        if (!peek.ok()) {
          lb.failed = true;
          spdlog::debug("step {}: branch {}: {}", step, lb.rec.id, peek.error().ToString());
          continue;
        }
        if (!peek->has_value()) continue;
        lb.outcome = **peek;
        lb.rec.finished_early = true;
        if (!options_.prelaunch) continue;
        History next = history;
        next.turns.push_back({lb.rec.command, *lb.outcome});
        auto pre = actor_.Launch(next);
        if (pre.ok()) {
          lb.pre = std::move(*pre);
          lb.rec.prelaunched = true;
          ++rec.prelaunched_calls;
        }
      }
    }
    auto cancel_all = [&] {
      for (auto& lb : live) {
        if (lb.pre) lb.pre->Cancel();
      }
    };
    if (!decided->ok()) {
      cancel_all();
      (void)env_.Abort();
      return std::move(*decided).error().Context("actor step " + std::to_string(step));
    }
    ActorDecision decision = std::move(*decided).value();
    rec.actor_wait_ms = Ms(Clock::now() - step_start);
    if (speculate) speculator_->Cancel();

    if (decision.done) {
      auto end = Clock::now();
      for (auto& lb : live) {
        lb.rec.cost_ms = lb.outcome ? lb.outcome->duration_ms : Ms(end - lb.launched);
        rec.wasted_branch_ms += lb.rec.cost_ms;
        if (lb.pre) {
          lb.pre->Cancel();
          rec.wasted_call_ms += Ms(end - lb.pre->launched());
          ++rec.cancelled_calls;
        }
        rec.branches.push_back(lb.rec);
      }
      (void)env_.Abort();
      report.completed = true;
      report.final_message = decision.message;
      report.total_ms = Ms(end - run_start);
      rec.done_step = true;  // kept so its wasted branches are counted
      if (!live.empty()) report.steps.push_back(std::move(rec));
      return report;
    }

    // A miss (no live branch has the command): discard the branches first,
    // timed, so their cost on the committed path is measured on its own.
    // (The commit would discard them anyway; the daemon's match rule is
    // equality after trimming, DESIGN.md "The contract" 2.)
    if (!live.empty() && options_.measure_discard) {
      std::string want = TrimCommand(decision.command);
      bool match = std::any_of(live.begin(), live.end(), [&](const LiveBranch& lb) { return lb.rec.command == want; });
      if (!match) {
        auto abort_start = Clock::now();
        auto st = env_.Abort();
        if (st.ok()) rec.discard_ms = Ms(Clock::now() - abort_start);
        else spdlog::debug("step {}: abort before a miss: {}", step, st.ToString());
      }
    }
    auto commit_start = Clock::now();
    auto committed = env_.Commit(decision.command, options_.action_timeout);
    auto commit_end = Clock::now();
    if (!committed.ok()) {
      cancel_all();
      return std::move(committed).error().Context("commit step " + std::to_string(step));
    }
    CommitResult& cr = *committed;
    rec.command = decision.command;
    rec.outcome = cr.outcome;
    rec.hit = cr.hit;
    rec.commit_ms = Ms(commit_end - commit_start);
    rec.lossy_effects = cr.lossy_effects;
    rec.flags = cr.flags;

    std::unique_ptr<ActorCall> next_call;
    size_t discarded = 0;
    std::vector<double> extra_cost;  // per branch, beyond the marginal cost
    for (auto& lb : live) {
      lb.rec.promoted = cr.hit && cr.branch == lb.rec.id;
      if (lb.outcome) {
        lb.rec.cost_ms = lb.outcome->duration_ms;
      } else if (lb.rec.promoted) {
        lb.rec.cost_ms = cr.outcome.duration_ms;
      } else {
        lb.rec.cost_ms = Ms(commit_end - lb.launched);  // ran until discarded
      }
      double cost = lb.rec.cost_ms * options_.branch_cost_weight;
      rec.branch_cost_ms += lb.rec.cost_ms;
      if (!lb.rec.promoted) {
        rec.wasted_branch_ms += lb.rec.cost_ms;
        ++discarded;
      }
      if (lb.pre) {
        // Losslessness says the promoted result equals the peeked one; if it
        // does not, the pre-launched call saw a history that never happened.
        bool same = lb.outcome && lb.outcome->SameObservable(cr.outcome);
        if (lb.rec.promoted && !same) {
          rec.mismatch = true;
          spdlog::error("step {}: branch {} promoted with a result different from its peek",
                        step, lb.rec.id);
        }
        if (lb.rec.promoted && same) {
          next_call = std::move(lb.pre);
          rec.prelaunch_kept = true;
        } else {
          lb.pre->Cancel();
          rec.wasted_call_ms += Ms(commit_end - lb.pre->launched());
          ++rec.cancelled_calls;
          if (!lb.rec.promoted) cost += options_.prelaunch_cost_ms;
        }
      }
      extra_cost.push_back(cost);
      rec.branches.push_back(lb.rec);
    }
    // The marginal cost of a branch on the committed path, measured on
    // misses: the time the discard took, per discarded branch, plus the
    // launch time when the actor had already decided (it waited for the
    // launches). Hits pay no discard of their own branch and are not
    // measured (their other branches cost what misses show).
    if (!cr.hit) rec.commit_overhead_ms = std::max(0.0, rec.commit_ms - cr.outcome.duration_ms);
    if (!live.empty() && !cr.hit && discarded > 0 && rec.discard_ms >= 0) {
      double waited_for_launch = decided_at_once ? rec.launch_ms : 0;
      rec.marginal_cost_ms = (rec.discard_ms + waited_for_launch) / static_cast<double>(discarded);
      for (double extra : extra_cost) cost_.ObserveBranch(rec.marginal_cost_ms + extra);
    } else {
      for (double extra : extra_cost) {
        if (extra > 0) cost_.ObserveBranch(extra + cost_.branch_cost_ms());
      }
    }
    history.turns.push_back({decision.command, cr.outcome});
    spec_history.steps.push_back(ToSpeculatorStep(history.turns.back()));

    if (cr.hit) rec.hidden_action_ms = std::max(0.0, cr.saved_ms);
    if (next_call) {
      rec.head_start_ms = Ms(commit_end - next_call->launched());
      window_used = true;
      call = std::move(next_call);
    } else {
      SPECULA_ASSIGN_OR_RETURN(call, actor_.Launch(history));
    }
    rec.saved_ms = rec.hidden_action_ms + rec.head_start_ms;
    if (cr.hit) cost_.ObserveHit(rec.saved_ms);
    report.steps.push_back(std::move(rec));
  }
}

}  // namespace specula::agents
