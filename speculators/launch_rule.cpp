#include "speculators/launch_rule.h"

#include <algorithm>

namespace specula::speculators {

double HitProbability(const std::vector<double>& sorted_p, size_t m) {
  double miss = 1.0;
  for (size_t j = 0; j < m && j < sorted_p.size(); ++j) {
    miss *= 1.0 - std::clamp(sorted_p[j], 0.0, 1.0);
  }
  return 1.0 - miss;
}

size_t ChooseLaunchCount(const std::vector<double>& sorted_p, size_t k, double saving_ms,
                         double branch_cost_ms) {
  size_t limit = std::min(k, sorted_p.size());
  size_t best_m = 0;
  double best = 0.0;  // m = 0: no gain, no cost
  for (size_t m = 1; m <= limit; ++m) {
    double gain = HitProbability(sorted_p, m) * saving_ms - branch_cost_ms * static_cast<double>(m);
    // Strictly better only: equal gain with more branches is pure waste.
    if (gain > best + 1e-9) {
      best = gain;
      best_m = m;
    }
  }
  return best_m;
}

}  // namespace specula::speculators
