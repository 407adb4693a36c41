// Measuring a speculator on recorded sessions: hit@k (the next command is
// among the first k candidates), per source, the read-only share, the
// reliability of the confidences and the time per proposal. Any Speculator
// works; each session gets a fresh one from the factory.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "speculators/calibration.h"
#include "speculators/speculator.h"

namespace specula::speculators {

struct EvalSession {
  History history;
  std::string source;  // e.g. the directory it came from
  std::string name;
};

struct EvalOptions {
  std::vector<int> ks = {1, 3, 8};
  size_t misses = 0;  // keep a sample of this many missed steps (deterministic)
  int probe_k = 0;    // ask for this many candidates (> max k) to see where missed commands rank
  // Called after each session (e.g. to learn it online); may be empty.
  std::function<void(const EvalSession&)> after_session;
};

struct HitCounts {
  size_t steps = 0;
  std::map<int, size_t> hits;  // k -> steps whose command was in the first k
  size_t read_only_steps = 0;
  std::map<int, size_t> read_only_hits;
  size_t heredoc_steps = 0;
  void Merge(const HitCounts& other);
  nlohmann::json ToJson() const;
};

struct Miss {
  std::string source, name;
  size_t index = 0;
  std::string previous, truth;
  std::vector<Candidate> proposed;
  int rank = -1;             // where the truth was among probe_k candidates (-1: absent)
  std::string truth_source;  // the candidate source that had it
};

struct EvalReport {
  std::string speculator;
  size_t sessions = 0;
  HitCounts all;
  std::map<std::string, HitCounts> by_source;            // per EvalSession::source
  std::map<std::string, size_t> hits_by_candidate_source;  // hit@max(k): which rule produced the hit
  Reliability reliability;       // every proposed candidate (first max(k))
  Reliability reliability_top1;  // the first candidate only
  double mean_us = 0, p99_us = 0;  // time per proposal
  std::vector<Miss> misses;
  size_t errors = 0;

  // Pools another report (e.g. the folds of a cross-validation).
  void Merge(const EvalReport& other);
  nlohmann::json ToJson() const;
  std::string ToText() const;
};

using SpeculatorFactory = std::function<std::unique_ptr<Speculator>(const EvalSession&)>;

EvalReport Evaluate(const SpeculatorFactory& make, const std::vector<EvalSession>& sessions,
                    const EvalOptions& options);

}  // namespace specula::speculators
