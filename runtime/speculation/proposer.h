// One session's transparent speculation, as decisions only: the session's
// history (commands, outputs, exit codes, cwd), its speculator, the costs
// the launch rule weighs, and which branches to launch next. No threads and
// no daemon: speculation.h runs it off the commit path, and unit tests drive
// it with a fake speculator and fake costs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/api/wire.h"
#include "speculators/history.h"
#include "speculators/launch_rule.h"
#include "speculators/speculator.h"

namespace specula::speculators {
class AgentLearning;  // speculators/builtin.h
}

namespace specula::speculation {

// One branch to launch: the candidate command and why.
struct Launch {
  std::string command;
  api::BranchOrigin origin;
};

// The branch cost c of the launch rule, in milliseconds on the committed
// path (issue 18: the measured marginal cost, not a prior). A speculative
// branch runs at the lowest CPU weight (core::SpeculativeCpuWeight), so on
// an idle core it takes nothing from the committed path but the daemon's
// own work of launching it (`launch_ms`); without an idle core it competes
// for a core at `speculative_share` of the CPU (weight / (weight + the
// committed path's)) for its run time `run_ms`, scaled by how much of a
// core is missing.
double MarginalBranchCostMs(double idle_cores, double launch_ms, double run_ms, double speculative_share);

// The CPU share of a speculative branch against one committed action:
// cpu.weight 25 against the default 100.
inline constexpr double kSpeculativeShare = 25.0 / (25.0 + 100.0);

class Proposer {
 public:
  // The newest steps kept for the speculator (History::first counts the
  // rest): a round copies the history, and a step holds up to 16 KiB of
  // output, so a session of thousands of commits would copy megabytes per
  // commit and never give them back. The built-in speculator has learned
  // from the older steps already; a model's prompt shows a few.
  static constexpr size_t kMaxHistorySteps = 256;

  // The speculator the config names ("builtin": the shipped model; "openai":
  // the OpenAI-compatible client; "none": nothing is ever proposed).
  // `learning`: the daemon's tables of agents learned from finished
  // sessions (speculators::AgentLearning; the built-in speculator reads and
  // feeds it, keyed by config.agent). Null: nothing learned across sessions.
  static Result<std::unique_ptr<Proposer>> Create(const api::SpeculationConfig& config,
                                                  std::shared_ptr<speculators::AgentLearning> learning = nullptr);
  Proposer(api::SpeculationConfig config, std::unique_ptr<speculators::Speculator> speculator);

  // A commit: its step, the head it made, whether it was a hit and whether
  // the promoted branch was one the speculation launched (its origin says so).
  void Observe(speculators::Step step, const std::string& head, bool hit, bool speculated,
               double duration_ms, double saved_ms);
  // Rollback to `checkpoint`: the history is cut back to the step that made
  // it (all of it is forgotten when no step made it: the session's root).
  void Rollback(const std::string& checkpoint);
  // The daemon's cost of launching one branch (Speculate's own time).
  void ObserveLaunch(double launch_ms);
  void NoteError(const Error& e);
  // The round for `head` is over, whatever its outcome (Report's round_head).
  void FinishRound(const std::string& head) { status_.round_head = head; }

  // The branches to launch for the current head: the speculator's top k
  // over min_p, of which the launch rule picks the first m (launch "all":
  // every one), with c = MarginalBranchCostMs(idle_cores, ...) and D = the
  // mean run time of the session's commits (what a hit saves the agent).
  Result<std::vector<Launch>> Next(double idle_cores);
  // Next in two halves, so that the worker holds no lock while a model
  // answers: Propose only asks the speculator (one caller at a time, and
  // nothing else touches the speculator); Choose counts the round, keeps a
  // failure for Report and applies min_p and the launch rule.
  Result<std::vector<speculators::Candidate>> Propose(const speculators::History& history);
  Result<std::vector<Launch>> Choose(Result<std::vector<speculators::Candidate>> proposed, double idle_cores);

  const speculators::History& history() const { return history_; }
  api::SpeculationStatus Report() const;

 private:
  api::SpeculationConfig config_;
  std::unique_ptr<speculators::Speculator> speculator_;
  speculators::History history_;
  std::vector<std::string> heads_;  // heads_[i]: the checkpoint history_.steps[i] made
  speculators::CostModel costs_;    // D: commits' run times; c's launch part: launches
  double run_sum_ms_ = 0;
  double runs_ = 0;
  api::SpeculationStatus status_;
};

}  // namespace specula::speculation
