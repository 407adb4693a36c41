// The Speculative Actions engine (Ye et al., 2025) on the agent side.
//
// Per step t, while the actor's call for step t runs:
//  (a) the speculator proposes up to k candidates; the launch rule
//      (launch_rule.h) picks the first m; each runs as a branch
//      (Environment::Speculate). A hit returns its already computed result,
//      hiding the action's run time.
//  (b) as soon as a branch has its result (Environment::PeekBranch), the
//      actor's call for step t+1 is pre-launched with that command and result
//      appended to the history. If the actor's real command matches, the
//      commit returns the branch's result (identical, by losslessness), so
//      the pre-launched call is exactly the call the agent would have made,
//      and it is kept, already under way; otherwise it is cancelled.
// A kept pre-launch uses up step t+1's speculation window, as in the paper
// (the speculator for t+1 would have had to start on the speculated history;
// branches only fork from the committed head).
//
// Branches should run at lower CPU priority than the committed path: with the
// daemon that is the policy's resources.cpu_weight (e.g. 50 against the
// default 100); the engine does not set it itself.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "agents/actor.h"
#include "agents/environment.h"
#include "agents/launch_rule.h"
#include "agents/speculator.h"

namespace specula::agents {

struct EngineOptions {
  int max_branches = 3;            // k; 0 turns speculation off
  bool use_launch_rule = true;     // false: launch all k candidates
  bool prelaunch = true;           // part (b): pre-launch the actor's next call
  bool speculate_after_hit = false;  // true: ignore the paper's window rule
  CostModel::Priors priors;
  // c, the cost of a branch, is its measured marginal cost on the committed
  // path: on a miss the branches are discarded (Environment::Abort, timed)
  // before the commit, and that time per branch, plus any launch time the
  // actor had to wait for, is the sample. On top of that, each millisecond
  // of branch run time costs `branch_cost_weight` ms: 0 when branches use
  // idle cores at lower priority (the default), more on a machine whose
  // cores are all busy.
  double branch_cost_weight = 0;
  // Time the discard of a miss's branches separately (see above); off, the
  // commit discards them and c stays at its prior plus the weighted costs.
  bool measure_discard = true;
  // Extra cost charged per branch whose pre-launched actor call is wasted.
  double prelaunch_cost_ms = 0;
  std::chrono::milliseconds action_timeout{120000};
  std::chrono::milliseconds poll_interval{2};
  size_t max_steps = 200;
  // Who the agent is and which task it runs, for the speculator (the
  // built-in one learns per agent and replays earlier runs of a task).
  std::string agent;
  std::string task_id;
};

struct BranchRecord {
  BranchId id;
  std::string command;
  double confidence = 0;
  std::string source;
  double cost_ms = 0;             // its run time (or time until discarded)
  bool finished_early = false;    // result seen before the actor decided
  bool prelaunched = false;       // an actor call was pre-launched from it
  bool promoted = false;
};

struct StepRecord {
  size_t index = 0;
  std::string command;
  ActionOutcome outcome;
  bool window_skipped = false;    // a kept pre-launch used up this window
  size_t candidates = 0;          // proposed by the speculator
  size_t launch_count = 0;        // chosen by the launch rule
  double q = 0;                   // predicted hit probability of the launched set
  double model_saving_ms = 0, model_branch_cost_ms = 0;  // D and c used
  std::vector<BranchRecord> branches;
  size_t refused = 0;             // Speculate calls the environment refused
  size_t refreshed = 0;           // branches launched from candidates that arrived later (Refresh)
  double launch_ms = 0;           // wall time of the Speculate calls
  double commit_overhead_ms = 0;  // commit time minus the action's own run time (misses)
  double marginal_cost_ms = -1;   // measured cost per discarded branch on the committed path (-1: none)
  double discard_ms = -1;         // wall time of discarding a miss's branches (-1: not done)
  bool hit = false;
  bool prelaunch_kept = false;
  size_t prelaunched_calls = 0, cancelled_calls = 0;
  double actor_wait_ms = 0;       // step start until the actor's decision
  double commit_ms = 0;           // wall time of the commit call
  double hidden_action_ms = 0;    // action time hidden by a hit
  double head_start_ms = 0;       // how much earlier the next call started
  double saved_ms = 0;            // hidden_action_ms + head_start_ms
  double branch_cost_ms = 0, wasted_branch_ms = 0, wasted_call_ms = 0;
  std::vector<api::LossyEffect> lossy_effects;
  std::vector<std::string> flags;
  bool mismatch = false;          // promoted result differed from the peeked one (a bug)
  bool done_step = false;         // the actor's final "done" call (no command ran)
};

struct RunReport {
  std::string actor, speculator, environment;
  bool synthetic = false;  // the speculator is synthetic (oracle)
  std::vector<StepRecord> steps;
  bool completed = false;  // the actor said it was done
  std::string final_message;
  double total_ms = 0;

  size_t Hits() const;
  size_t Branches() const;
  size_t Prelaunched() const;
  size_t Kept() const;
  double SavedMs() const;
  double WastedBranchMs() const;
  double WastedCallMs() const;
  nlohmann::json ToJson() const;
};

struct LiveBranch;

class Engine {
 public:
  // `speculator` may be null (speculation off). All references must outlive Run.
  Engine(Environment& env, Actor& actor, Speculator* speculator, EngineOptions options);
  Result<RunReport> Run(const std::string& task);

 private:
  // Launches the first candidates the launch rule picks (not already
  // running, at most max_branches live in all).
  void LaunchCandidates(std::vector<Candidate> proposed, StepRecord& rec, std::vector<LiveBranch>& live,
                        size_t step);

  Environment& env_;
  Actor& actor_;
  Speculator* speculator_;
  EngineOptions options_;
  CostModel cost_;
};

}  // namespace specula::agents
