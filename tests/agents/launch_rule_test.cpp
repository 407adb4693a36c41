// The launch rule against optima computed by hand, and the running cost model.
#include "agents/launch_rule.h"

#include <gtest/gtest.h>

namespace specula::agents {
namespace {

TEST(LaunchRuleTest, HitProbabilityIsOneMinusProductOfMisses) {
  std::vector<double> p = {0.5, 0.3, 0.1};
  EXPECT_DOUBLE_EQ(HitProbability(p, 0), 0.0);
  EXPECT_DOUBLE_EQ(HitProbability(p, 1), 0.5);
  EXPECT_NEAR(HitProbability(p, 2), 1 - 0.5 * 0.7, 1e-12);        // 0.65
  EXPECT_NEAR(HitProbability(p, 3), 1 - 0.5 * 0.7 * 0.9, 1e-12);  // 0.685
  EXPECT_NEAR(HitProbability(p, 9), 0.685, 1e-12);                 // capped at p.size()
}

TEST(LaunchRuleTest, PicksHandComputedOptimum) {
  std::vector<double> p = {0.5, 0.3, 0.1};
  // D=1000, c=100: gains 0, 400, 450, 385 -> m=2.
  EXPECT_EQ(ChooseLaunchCount(p, 3, 1000, 100), 2u);
  // k caps it: with k=1 the best allowed is m=1.
  EXPECT_EQ(ChooseLaunchCount(p, 1, 1000, 100), 1u);
  // D=1000, c=10: gains 490, 630, 655 -> m=3.
  EXPECT_EQ(ChooseLaunchCount(p, 3, 1000, 10), 3u);
  // D=1000, c=600: gains -100, ... -> launch nothing.
  EXPECT_EQ(ChooseLaunchCount(p, 3, 1000, 600), 0u);
  // D=1000, c=450: gains 50, -250, -665 -> m=1.
  EXPECT_EQ(ChooseLaunchCount(p, 3, 1000, 450), 1u);
}

TEST(LaunchRuleTest, TiesAndZeroProbabilitiesPreferFewerBranches) {
  // A zero-probability branch adds cost and no gain.
  EXPECT_EQ(ChooseLaunchCount({0.4, 0.0, 0.0}, 3, 1000, 1), 1u);
  // Free branches with no chance still add nothing: strictly-better rule.
  EXPECT_EQ(ChooseLaunchCount({0.4, 0.0}, 2, 1000, 0), 1u);
  EXPECT_EQ(ChooseLaunchCount({}, 3, 1000, 1), 0u);
  // Certain first candidate: a second one can only cost.
  EXPECT_EQ(ChooseLaunchCount({1.0, 0.9}, 2, 1000, 1), 1u);
}

TEST(LaunchRuleTest, EqualProbabilitiesThresholdRule) {
  // p=0.3 each, D=1000, c=100: q = 0.3, 0.51, 0.657, 0.7599
  // gains 200, 310, 357, 359.9 -> m=4 (each extra branch adds p(1-p)^(m-1)*D).
  EXPECT_EQ(ChooseLaunchCount({0.3, 0.3, 0.3, 0.3}, 4, 1000, 100), 4u);
  // c=150: gains 150, 210, 207 -> m=2.
  EXPECT_EQ(ChooseLaunchCount({0.3, 0.3, 0.3, 0.3}, 4, 1000, 150), 2u);
}

TEST(CostModelTest, StartsAtPriorsThenFollowsMeasurements) {
  CostModel m({/*saving_ms=*/1000, /*branch_cost_ms=*/50, /*prior_weight=*/2});
  EXPECT_DOUBLE_EQ(m.saving_ms(), 1000);
  EXPECT_DOUBLE_EQ(m.branch_cost_ms(), 50);
  m.ObserveHit(400);
  m.ObserveHit(400);
  // (1000*2 + 800) / 4
  EXPECT_DOUBLE_EQ(m.saving_ms(), 700);
  for (int i = 0; i < 98; ++i) m.ObserveBranch(10);
  // (50*2 + 980) / 100
  EXPECT_DOUBLE_EQ(m.branch_cost_ms(), 10.8);
}

}  // namespace
}  // namespace specula::agents
