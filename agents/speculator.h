// The speculator: a fast guesser of the actor's next command. It proposes up
// to k candidates with confidences (estimated hit probabilities); the launch
// rule (launch_rule.h) picks how many of them run as branches.
#pragma once

#include <string>
#include <vector>

#include "agents/actor.h"
#include "common/error.h"

namespace specula::agents {

struct Candidate {
  std::string command;
  double confidence = 0;  // estimated probability that this is the actor's command
  std::string source;     // which rule/model produced it (for reports)
};

class Speculator {
 public:
  virtual ~Speculator() = default;
  // Candidates for the command after `history`, best first, distinct after
  // trimming, at most k.
  virtual Result<std::vector<Candidate>> Propose(const History& history, int k) = 0;
  virtual std::string Name() const = 0;
  // True for synthetic speculators (the oracle): every report labels them.
  virtual bool Synthetic() const { return false; }
};

// Sorts by confidence (stable), drops empty and duplicate commands (after
// trimming), clamps confidences to [0,1] and keeps at most k.
std::vector<Candidate> NormalizeCandidates(std::vector<Candidate> candidates, int k);

}  // namespace specula::agents
