// Training the built-in speculator's model from recorded sessions
// (trajectories converted to History): count tables pooled and per agent,
// and the scorer fitted on cross-validated predictions so that its
// confidences are calibrated on sessions the counts never saw:
//   known    K folds by task: counts from the other folds, the agent known;
//            runs of a task with other runs in the same fold are predicted a
//            second time with those runs as runbooks;
//   unknown  per agent: counts from the other agents only, agent unknown.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "common/error.h"
#include "speculators/history.h"
#include "speculators/model.h"

namespace specula::speculators {

struct TrainOptions {
  ModelParams params;
  size_t folds = 5;
  bool fit_scorer = true;
  // Bounds on the cross-validation work (steps predicted).
  size_t max_known_steps = 40000;
  size_t max_unknown_steps_per_agent = 6000;
  size_t max_runbook_sessions = 80;
  double l2 = 1e-3;  // ridge penalty of the logistic fit (per example)
  std::ostream* log = nullptr;
};

// Builds the count tables only (no scorer), pruned as for export.
Model BuildCounts(const std::vector<const History*>& sessions, const ModelParams& params);

// The full model. Sessions need agent ids (History::agent); task ids
// (History::task_id, else the task text) decide the folds.
Result<Model> Train(const std::vector<History>& sessions, const TrainOptions& options);

// The logistic fit (Newton's method, ridge): exposed for tests.
std::array<double, kFeatures> FitLogistic(const std::vector<std::array<double, kFeatures>>& x,
                                          const std::vector<double>& y, double l2, int iterations = 25);

}  // namespace specula::speculators
