// Calibration: reliability tables and the expected calibration error of
// confidences against outcomes, isotonic regression (pool adjacent
// violators) for fitting a calibration map, and the online calibrator that
// corrects a session's confidences by its own hit rate.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace specula::speculators {

struct Candidate;

struct ReliabilityBin {
  double lo = 0, hi = 0;
  size_t n = 0;
  double mean_confidence = 0;
  double hit_rate = 0;
};

// Accumulates (confidence, hit) pairs.
class Reliability {
 public:
  explicit Reliability(std::vector<double> edges = {0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001});
  void Add(double confidence, bool hit);
  // Adds another table's counts (same bin edges).
  void Merge(const Reliability& other);
  std::vector<ReliabilityBin> Bins() const;
  // sum over bins of n_b / N * |mean confidence - hit rate|
  double ExpectedCalibrationError() const;
  size_t count() const { return n_; }
  double mean_confidence() const { return n_ ? conf_sum_ / static_cast<double>(n_) : 0; }
  double hit_rate() const { return n_ ? static_cast<double>(hits_) / static_cast<double>(n_) : 0; }
  nlohmann::json ToJson() const;
  std::string ToText() const;

 private:
  std::vector<double> edges_;
  std::vector<double> conf_, hit_;
  std::vector<size_t> count_;
  size_t n_ = 0, hits_ = 0;
  double conf_sum_ = 0;
};

// Isotonic regression of y on x (weights 1): returns the breakpoints of a
// non-decreasing piecewise-linear map through the pooled blocks' (mean x,
// mean y), thinned to at most `max_points`, y shrunk towards the block mean
// with `prior` pseudo-observations of the overall rate.
void FitIsotonic(std::vector<std::pair<double, double>> xy, size_t max_points, double prior,
                 std::vector<double>& out_x, std::vector<double>& out_y);

// The session's own evidence: every proposal's confidences and whether the
// next command was among them. Factor() = (hits + kappa) / (expected + kappa)
// scales later confidences (clamped); it corrects a model whose calibration
// came from other agents.
class OnlineCalibrator {
 public:
  explicit OnlineCalibrator(double kappa = 4, double min_factor = 0.25, double max_factor = 3);
  void Record(const std::vector<Candidate>& proposed, const std::string& truth);
  double Factor() const;
  double Adjust(double p) const;
  double expected() const { return expected_; }
  double hits() const { return hits_; }
  void Reset() { expected_ = hits_ = 0; }

 private:
  double kappa_, min_, max_;
  double expected_ = 0, hits_ = 0;
};

}  // namespace specula::speculators
