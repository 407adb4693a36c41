// A speculator backed by a language model behind an HTTP API. Proposals can
// stream: each candidate is handed to `on_candidate` as soon as its JSON
// object is complete, so a cascade (cascade.h) can launch it before the
// reply ends.
#pragma once

#include <atomic>
#include <functional>

#include "speculators/prompt.h"
#include "speculators/speculator.h"

namespace specula::speculators {

using CandidateSink = std::function<void(const Candidate&)>;

class ModelSpeculator : public Speculator {
 public:
  // Blocking. `cancelled` (may be null) aborts the HTTP transfer within
  // 50 ms (kAborted). The result is normalised (sorted, distinct, <= k).
  virtual Result<std::vector<Candidate>> ProposeStreaming(const History& history, int k,
                                                          const std::atomic<bool>* cancelled,
                                                          const CandidateSink& on_candidate) = 0;
  Result<std::vector<Candidate>> Propose(const History& history, int k) override {
    return ProposeStreaming(history, k, nullptr, {});
  }
  // Fast candidates to offer the model as hints (the cascade sets them).
  void SetHints(std::vector<Candidate> hints) { hints_ = std::move(hints); }

 protected:
  std::vector<Candidate> hints_;
};

}  // namespace specula::speculators
