// Agent-side speculators that need no model: the original n-gram speculator
// (kept as "ngram" for comparison with the built-in v2 of speculators/,
// speculators/builtin.h) and the synthetic oracle for controlled experiments.
#pragma once

#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "agents/speculator.h"
#include "agents/trajectory.h"

namespace specula::agents {

// A recorded trajectory as the speculators see it (outcome-less steps have
// has_outcome false).
speculators::History ToSpeculatorHistory(const Trajectory& trajectory, const std::string& agent,
                                         const std::string& task_id);

// Command-sequence counts over a set of trajectories.
struct NgramCounts {
  std::map<std::string, std::map<std::string, int>> bigram;   // prev -> next -> n
  std::map<std::pair<std::string, std::string>, std::map<std::string, int>> trigram;
  std::map<std::string, int> first;                           // opening commands
  void Add(const Trajectory& t);
};

// Proposes, from several sources, each with a confidence calibrated on
// held-out trajectories:
//   session-repeat  what followed the last command the last time this session ran it
//   session-rerun   a command run 2..5 steps ago (the "test, fix, test" loop)
//   corpus-trigram  most frequent follower of the last two commands in the corpus
//   corpus-bigram   most frequent follower of the last command in the corpus
//   corpus-first    most frequent opening command (empty history)
// A source's confidence at rank r (and support bucket) is its Laplace-smoothed
// hit rate there when predicting trajectories it was not trained on.
class NgramSpeculator : public Speculator {
 public:
  // Trains on every trajectory of `corpus` except the one named `exclude`
  // (leave-one-out: a trajectory is never predicted by a model that saw it),
  // and calibrates with nested leave-one-out over the remaining ones.
  static NgramSpeculator Train(const std::vector<Trajectory>& corpus, const std::string& exclude);

  Result<std::vector<Candidate>> Propose(const speculators::History& history, int k) override;
  Result<std::vector<Candidate>> Propose(const History& history, int k) {
    return Propose(ToSpeculatorHistory(history), k);
  }
  std::string Name() const override { return "ngram"; }

  // Uncalibrated proposals: command, source, rank within the source, and the
  // support bucket: the candidate's share of the followers seen in the
  // corpus, in quarters (0..4; 4 for session sources), so "always followed
  // by X" and "followed by X once among five" are calibrated separately.
  struct Raw {
    std::string command;
    std::string source;
    int rank;
    int bucket;
  };
  static std::vector<Raw> RawCandidates(const NgramCounts& counts, const speculators::History& history,
                                        int per_source);
  // Calibrated confidence of (source, rank, bucket); a small prior when never measured.
  double Confidence(const Raw& raw) const;

 private:
  NgramCounts counts_;
  std::map<std::tuple<std::string, int, int>, std::pair<double, double>> calibration_;  // hits, tries
};

struct OracleOptions {
  double accuracy = 0.5;             // P(a given slot holds the true command)
  double reported_confidence = -1;   // confidence it claims; <0: = accuracy
  uint64_t seed = 1;
};

// SYNTHETIC: knows the trajectory's true next command. Slot j (j = 1..k) holds
// the truth with probability `accuracy` if no earlier slot does, so the top-1
// accuracy is `accuracy` and q(m) = 1-(1-accuracy)^m exactly. Wrong slots hold
// other commands of the same trajectory (realistic branch costs).
class OracleSpeculator : public Speculator {
 public:
  OracleSpeculator(Trajectory trajectory, OracleOptions options);
  Result<std::vector<Candidate>> Propose(const speculators::History& history, int k) override;
  Result<std::vector<Candidate>> Propose(const History& history, int k) {
    return Propose(ToSpeculatorHistory(history), k);
  }
  std::string Name() const override;
  bool Synthetic() const override { return true; }

 private:
  Trajectory trajectory_;
  OracleOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace specula::agents
