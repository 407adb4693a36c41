// How many speculative branches to launch: the threshold rule of the paper's
// cost-latency analysis. With per-branch hit probabilities p_1 >= p_2 >= ...,
// launching the first m branches hits with probability
//   q(m) = 1 - prod_{j<=m} (1 - p_j)
// and the expected net gain is q(m) * D - c * m, where D is the expected
// saving of a hit and c the cost of one branch (both in milliseconds of
// end-to-end latency). The rule launches the m that maximises it.
#pragma once

#include <cstddef>
#include <vector>

namespace specula::speculators {

// q(m) for the first m probabilities (which must already be sorted).
double HitProbability(const std::vector<double>& sorted_p, size_t m);

// argmax over m in [0, min(k, p.size())] of q(m)*D - c*m; ties go to the
// smaller m (fewer branches for the same gain). `sorted_p` descending.
size_t ChooseLaunchCount(const std::vector<double>& sorted_p, size_t k, double saving_ms,
                         double branch_cost_ms);

// Running estimates of D and c, started from configured priors that count as
// `prior_weight` observations each, then updated with what the engine
// measures: every hit's saving, every branch's cost.
class CostModel {
 public:
  struct Priors {
    double saving_ms = 1000;      // D before any hit was seen
    double branch_cost_ms = 50;   // c before any branch was measured
    double prior_weight = 3;
  };
  explicit CostModel(Priors priors) : priors_(priors) {}

  void ObserveHit(double saved_ms) { saving_sum_ += saved_ms; ++hits_; }
  void ObserveBranch(double cost_ms) { cost_sum_ += cost_ms; ++branches_; }

  double saving_ms() const {
    return (priors_.saving_ms * priors_.prior_weight + saving_sum_) / (priors_.prior_weight + hits_);
  }
  double branch_cost_ms() const {
    return (priors_.branch_cost_ms * priors_.prior_weight + cost_sum_) /
           (priors_.prior_weight + branches_);
  }

 private:
  Priors priors_;
  double saving_sum_ = 0, cost_sum_ = 0;
  double hits_ = 0, branches_ = 0;
};

}  // namespace specula::speculators
