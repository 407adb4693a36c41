// Reliability tables and ECE, isotonic fitting, the online calibrator, the
// logistic fit, and candidate merging.
#include "speculators/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "speculators/speculator.h"
#include "speculators/trainer.h"

namespace specula::speculators {
namespace {

TEST(ReliabilityTest, EceOfPerfectAndOfOverconfident) {
  Reliability perfect;
  for (int i = 0; i < 1000; ++i) perfect.Add(0.25, i % 4 == 0);
  EXPECT_NEAR(perfect.ExpectedCalibrationError(), 0.0, 1e-9);
  EXPECT_NEAR(perfect.hit_rate(), 0.25, 1e-9);
  Reliability over;
  for (int i = 0; i < 100; ++i) over.Add(0.9, i % 10 == 0);  // claims 0.9, hits 0.1
  EXPECT_NEAR(over.ExpectedCalibrationError(), 0.8, 1e-9);
  auto bins = over.Bins();
  size_t used = 0;
  for (const auto& b : bins) used += b.n ? 1 : 0;
  EXPECT_EQ(used, 1u);
  EXPECT_NE(over.ToText().find("ECE 0.8000"), std::string::npos);
  EXPECT_EQ(over.ToJson()["n"], 100);
}

TEST(IsotonicTest, MonotoneAndCloseToTheRates) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::pair<double, double>> xy;
  for (int i = 0; i < 20000; ++i) {
    double x = u(rng);
    xy.push_back({x, u(rng) < x * x ? 1.0 : 0.0});  // true rate x^2
  }
  std::vector<double> xs, ys;
  FitIsotonic(xy, 16, 2, xs, ys);
  ASSERT_FALSE(xs.empty());
  EXPECT_LE(xs.size(), 16u);
  for (size_t i = 1; i < xs.size(); ++i) {
    EXPECT_GE(xs[i], xs[i - 1]);
    EXPECT_GE(ys[i], ys[i - 1]);
  }
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_NEAR(ys[i], xs[i] * xs[i], 0.06);
}

TEST(OnlineCalibratorTest, ScalesTowardsTheSessionsHitRate) {
  OnlineCalibrator c(4);
  EXPECT_DOUBLE_EQ(c.Factor(), 1.0);
  // The model claims 0.5 per step and is always wrong.
  for (int i = 0; i < 20; ++i) c.Record({{"a", 0.5, "x"}}, "b");
  EXPECT_LT(c.Factor(), 0.4);
  EXPECT_LT(c.Adjust(0.5), 0.2);
  OnlineCalibrator d(4);
  for (int i = 0; i < 20; ++i) d.Record({{"a", 0.1, "x"}}, "a");  // claims 0.1, always right
  EXPECT_GT(d.Factor(), 2.0);
  EXPECT_LE(d.Adjust(0.9), 0.97);
}

TEST(LogisticTest, RecoversKnownWeights) {
  std::mt19937 rng(7);
  std::normal_distribution<double> n(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::array<double, kFeatures>> x;
  std::vector<double> y;
  for (int i = 0; i < 20000; ++i) {
    std::array<double, kFeatures> f{};
    f[0] = 1;
    f[1] = n(rng);
    f[3] = n(rng);
    double z = -1 + 1.5 * f[1] - 0.5 * f[3];
    x.push_back(f);
    y.push_back(u(rng) < 1 / (1 + std::exp(-z)) ? 1 : 0);
  }
  auto w = FitLogistic(x, y, 1e-6);
  EXPECT_NEAR(w[0], -1, 0.1);
  EXPECT_NEAR(w[1], 1.5, 0.1);
  EXPECT_NEAR(w[3], -0.5, 0.1);
  EXPECT_NEAR(w[2], 0, 1e-6);  // a feature that is always 0
}

TEST(CandidatesTest, NormalizeAndMerge) {
  auto n = NormalizeCandidates({{" ls ", 0.2, "a"}, {"ls", 0.5, "b"}, {"", 0.9, "c"}, {"pwd", 1.7, "d"}}, 5);
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0].command, "pwd");
  EXPECT_DOUBLE_EQ(n[0].confidence, 1.0);
  EXPECT_EQ(n[1].command, "ls");
  EXPECT_DOUBLE_EQ(n[1].confidence, 0.5);  // of two equal commands the more confident one stays
  auto m = MergeCandidates({{{"make", 0.4, "builtin"}, {"ls", 0.1, "builtin"}}, {{"make", 0.6, "model"}, {"pwd", 0.3, "model"}}}, 3);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].command, "make");
  // Halfway from the best (0.6) to the noisy-or (0.76).
  EXPECT_NEAR(m[0].confidence, 0.68, 1e-9);
  EXPECT_EQ(m[0].source, "model+builtin");
  EXPECT_EQ(m[1].command, "pwd");
  EXPECT_EQ(m[2].command, "ls");
}

}  // namespace
}  // namespace specula::speculators
