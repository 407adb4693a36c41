// The speculator interface: a fast guesser of the agent's next command. It
// proposes up to k candidates with confidences (calibrated estimates of the
// probability that the candidate is exactly the next command); a launch rule
// decides how many run as branches.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "speculators/history.h"

namespace specula::speculators {

struct Candidate {
  std::string command;
  double confidence = 0;  // estimated P(this is the agent's next command)
  std::string source;     // which rule or model produced it (for reports)
};

// Threading: one Speculator object serves one session and is called from one
// thread at a time unless a class says otherwise (models and clients shared
// between sessions are immutable or locked).
class Speculator {
 public:
  virtual ~Speculator() = default;
  // Candidates for the command after `history`, best first, distinct after
  // trimming, at most k. A speculator may keep state between calls (the
  // built-in one learns from the session online): calls for the same
  // session should pass growing histories.
  virtual Result<std::vector<Candidate>> Propose(const History& history, int k) = 0;
  // Speculators whose proposals arrive over time (a model behind a network,
  // the cascade) return the updated list here, when it changed since the
  // last Propose or Refresh; nullopt otherwise. Cheap: the engine calls it
  // while the actor thinks.
  virtual std::optional<std::vector<Candidate>> Refresh() { return std::nullopt; }
  // The actor decided: abandon work in flight for the last proposal.
  virtual void Cancel() {}
  virtual std::string Name() const = 0;
  // True for synthetic speculators (an oracle): every report labels them.
  virtual bool Synthetic() const { return false; }
};

// Sorts by confidence (stable), drops empty and duplicate commands (after
// trimming), clamps confidences to [0,1] and keeps at most k.
std::vector<Candidate> NormalizeCandidates(std::vector<Candidate> candidates, int k);

// Merges candidate lists from independent speculators: duplicates (after
// trimming) keep the highest confidence raised by the others' support:
// 1 - prod(1 - p_i) over the lists proposing it, capped at `cap`; the source
// is the best list's, joined with "+" for the others.
std::vector<Candidate> MergeCandidates(const std::vector<std::vector<Candidate>>& lists, int k,
                                       double cap = 0.95);

}  // namespace specula::speculators
