// The built-in speculator v2: no model server, no network, microseconds per
// proposal. Per session it keeps a SessionState (slots and context keys,
// session_state.h) and a session count table learned online from the
// session's own committed steps. A proposal instantiates the templates that
// the model (corpus, per agent and pooled), the session itself and earlier
// runs of the same task (runbooks) rank highest in the current context,
// merges duplicates, and scores each distinct command with the model's
// calibrated scorer; an online calibrator then corrects the confidences by
// the session's own hit rate.
//
// Threading: a BuiltinSpeculator serves one session from one thread at a
// time. The Model is immutable and shared; a RunbookStore is locked.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "speculators/calibration.h"
#include "speculators/count_table.h"
#include "speculators/model.h"
#include "speculators/session_state.h"
#include "speculators/speculator.h"

namespace specula::speculators {

// Earlier runs of tasks, by TaskKey (history.h): the commands each run made.
// Filled from training data (eval) or, online, from finished sessions.
class RunbookStore {
 public:
  void Add(const std::string& task_key, std::vector<std::string> commands);
  // Every run of the task (copies; empty when none).
  std::vector<std::vector<std::string>> Get(const std::string& task_key) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::vector<std::string>>> runs_;
};

// What one process (the daemon, an eval run) has learned online of agents
// the model does not know, from their finished sessions: per agent id (""
// for a client that names none) a count table of every step event, so the
// next session of that agent starts with the agent's habits (its opener,
// its view templates, its submit command) instead of the pooled corpus
// only. Calibration of a table learned this way is the session's online
// calibrator's job (it does not transfer between agents). Locked; the
// snapshot a session reads is immutable.
class AgentLearning {
 public:
  // Bounded, since agent names come from clients: at most `max_steps` step
  // events over all agents (the full counts cost about 7 KiB a step here),
  // at most kMaxAgents agents; past either, nothing more is learned.
  static constexpr size_t kDefaultMaxSteps = 8000;
  static constexpr size_t kMaxAgents = 16;
  explicit AgentLearning(size_t max_steps = kDefaultMaxSteps) : max_steps_(max_steps) {}

  void AddSession(const std::string& agent, const std::vector<StepEvent>& events);
  // The agent's table (finalized), or null before its first session.
  std::shared_ptr<const CountTable> Table(const std::string& agent) const;
  size_t Sessions(const std::string& agent) const;
  size_t steps() const;  // learned, over all agents
  size_t max_steps() const { return max_steps_; }

 private:
  struct Learned {
    CountTable counts;                          // every event, unpruned
    std::shared_ptr<const CountTable> snapshot;  // pruned copy sessions read
    size_t sessions = 0;
  };
  const size_t max_steps_;
  mutable std::mutex mu_;
  size_t steps_ = 0;
  std::unordered_map<std::string, Learned> agents_;
};

struct BuiltinOptions {
  bool learn_session = true;       // the session's own count table
  bool online_calibration = true;  // scale confidences by the session's hit rate
  bool use_runbooks = true;
  size_t max_candidates = 32;      // distinct commands scored per proposal
};

// One candidate with everything the scorer saw (for training and reports).
struct ScoredCandidate {
  std::string command;
  std::array<double, kFeatures> x{};
  double raw = 0;  // logistic output
  double p = 0;    // calibrated (before online calibration)
  std::string source;
};

class BuiltinSpeculator : public Speculator {
 public:
  explicit BuiltinSpeculator(std::shared_ptr<const Model> model, BuiltinOptions options = {},
                             std::shared_ptr<const RunbookStore> runbooks = nullptr,
                             std::shared_ptr<AgentLearning> learning = nullptr);
  // Folds the session into `learning` (once).
  ~BuiltinSpeculator() override;
  // With the shipped model.
  static Result<std::unique_ptr<BuiltinSpeculator>> WithShippedModel(BuiltinOptions options = {});

  // Speculator: keeps the session state of the last history it saw and only
  // feeds it the new steps when `history` extends it (otherwise restarts).
  Result<std::vector<Candidate>> Propose(const History& history, int k) override;
  std::string Name() const override { return "builtin"; }

  // Incremental use (one object per session, e.g. in the daemon). Begin
  // for another agent or task ends the session before it (its steps go to
  // `learning`, as they do when the object is destroyed).
  void Begin(const std::string& agent, const std::string& task, const std::string& task_id = "");
  void Observe(const Step& step);
  std::vector<Candidate> Next(int k);

  // Every scored candidate for the next command, best first (before the
  // online calibration); `apply_scorer` false leaves raw/p at 0 (training).
  std::vector<ScoredCandidate> Score(bool apply_scorer = true) const;

  const SessionState& state() const { return state_; }
  const OnlineCalibrator& online() const { return online_; }
  // Overrides the runbooks for this session (training, tests).
  void SetRunbooks(std::vector<std::vector<std::string>> runs);

 private:
  void Learn();  // the session so far into learning_
  std::shared_ptr<const Model> model_;
  BuiltinOptions options_;
  std::shared_ptr<const RunbookStore> store_;
  std::shared_ptr<AgentLearning> learning_;
  std::shared_ptr<const CountTable> learned_;  // the agent's learned table, when the model has none
  std::vector<StepEvent> events_;              // this session's, for learning_
  bool learns_ = false;                        // this session's agent is learned (Begin)
  const CountTable* agent_table_ = nullptr;
  std::string agent_, task_, task_id_, task_key_;
  SessionState state_;
  size_t base_ = 0;  // the session's index of the first step state_ observed
  CountTable session_;
  std::vector<std::vector<std::string>> runbooks_;
  std::vector<std::string> commands_;  // trimmed commands seen in this session
  OnlineCalibrator online_;
  std::vector<Candidate> pending_;     // last proposal, scored when the next step arrives
  size_t pending_at_ = static_cast<size_t>(-1);
  bool begun_ = false;
};

}  // namespace specula::speculators
