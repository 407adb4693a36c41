#include "speculators/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "speculators/speculator.h"

namespace specula::speculators {

Reliability::Reliability(std::vector<double> edges)
    : edges_(std::move(edges)), conf_(edges_.size() - 1), hit_(edges_.size() - 1), count_(edges_.size() - 1) {}

void Reliability::Add(double confidence, bool hit) {
  confidence = std::clamp(confidence, 0.0, 1.0);
  size_t b = static_cast<size_t>(std::upper_bound(edges_.begin(), edges_.end(), confidence) - edges_.begin());
  b = b == 0 ? 0 : std::min(b - 1, count_.size() - 1);
  conf_[b] += confidence;
  hit_[b] += hit ? 1 : 0;
  ++count_[b];
  ++n_;
  hits_ += hit ? 1 : 0;
  conf_sum_ += confidence;
}

void Reliability::Merge(const Reliability& o) {
  if (o.edges_ != edges_) return;
  for (size_t b = 0; b < count_.size(); ++b) {
    conf_[b] += o.conf_[b];
    hit_[b] += o.hit_[b];
    count_[b] += o.count_[b];
  }
  n_ += o.n_;
  hits_ += o.hits_;
  conf_sum_ += o.conf_sum_;
}

std::vector<ReliabilityBin> Reliability::Bins() const {
  std::vector<ReliabilityBin> out;
  for (size_t b = 0; b < count_.size(); ++b) {
    ReliabilityBin r;
    r.lo = edges_[b];
    r.hi = std::min(1.0, edges_[b + 1]);
    r.n = count_[b];
    if (r.n) {
      r.mean_confidence = conf_[b] / static_cast<double>(r.n);
      r.hit_rate = hit_[b] / static_cast<double>(r.n);
    }
    out.push_back(r);
  }
  return out;
}

double Reliability::ExpectedCalibrationError() const {
  if (!n_) return 0;
  double e = 0;
  for (const auto& b : Bins()) {
    e += static_cast<double>(b.n) / static_cast<double>(n_) * std::fabs(b.mean_confidence - b.hit_rate);
  }
  return e;
}

nlohmann::json Reliability::ToJson() const {
  nlohmann::json bins = nlohmann::json::array();
  for (const auto& b : Bins()) {
    bins.push_back({{"lo", b.lo}, {"hi", b.hi}, {"n", b.n}, {"mean_confidence", b.mean_confidence},
                    {"hit_rate", b.hit_rate}});
  }
  return {{"n", n_}, {"mean_confidence", mean_confidence()}, {"hit_rate", hit_rate()},
          {"ece", ExpectedCalibrationError()}, {"bins", bins}};
}

std::string Reliability::ToText() const {
  std::string s = "  confidence      n   mean conf   hit rate\n";
  char buf[128];
  for (const auto& b : Bins()) {
    if (!b.n) continue;
    std::snprintf(buf, sizeof buf, "  [%.2f,%.2f) %7zu   %9.3f   %8.3f\n", b.lo, b.hi, b.n, b.mean_confidence,
                  b.hit_rate);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "  all        %7zu   %9.3f   %8.3f   ECE %.4f\n", n_, mean_confidence(), hit_rate(),
                ExpectedCalibrationError());
  s += buf;
  return s;
}

void FitIsotonic(std::vector<std::pair<double, double>> xy, size_t max_points, double prior,
                 std::vector<double>& out_x, std::vector<double>& out_y) {
  out_x.clear();
  out_y.clear();
  if (xy.empty()) return;
  std::sort(xy.begin(), xy.end());
  double overall = 0;
  for (const auto& p : xy) overall += p.second;
  overall /= static_cast<double>(xy.size());
  struct Block {
    double sx, sy, n;
  };
  std::vector<Block> st;
  for (const auto& [x, y] : xy) {
    st.push_back({x, y, 1});
    while (st.size() >= 2) {
      Block& b = st[st.size() - 1];
      Block& a = st[st.size() - 2];
      if (a.sy / a.n < b.sy / b.n) break;
      a.sx += b.sx;
      a.sy += b.sy;
      a.n += b.n;
      st.pop_back();
    }
  }
  // Merge small neighbouring blocks until at most max_points remain (by
  // merging the pair with the fewest observations).
  while (st.size() > std::max<size_t>(max_points, 2)) {
    size_t best = 0;
    double best_n = 1e300;
    for (size_t i = 0; i + 1 < st.size(); ++i) {
      double n = st[i].n + st[i + 1].n;
      if (n < best_n) {
        best_n = n;
        best = i;
      }
    }
    st[best].sx += st[best + 1].sx;
    st[best].sy += st[best + 1].sy;
    st[best].n += st[best + 1].n;
    st.erase(st.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  double last = 0;
  for (const auto& b : st) {
    double y = (b.sy + prior * overall) / (b.n + prior);
    y = std::max(y, last);  // shrinkage can break monotonicity slightly
    last = y;
    out_x.push_back(b.sx / b.n);
    out_y.push_back(std::clamp(y, 0.0, 1.0));
  }
}

OnlineCalibrator::OnlineCalibrator(double kappa, double min_factor, double max_factor)
    : kappa_(kappa), min_(min_factor), max_(max_factor) {}

void OnlineCalibrator::Record(const std::vector<Candidate>& proposed, const std::string& truth) {
  for (const auto& c : proposed) {
    expected_ += c.confidence;
    if (c.command == truth) hits_ += 1;
  }
}

double OnlineCalibrator::Factor() const {
  return std::clamp((hits_ + kappa_) / (expected_ + kappa_), min_, max_);
}

double OnlineCalibrator::Adjust(double p) const { return std::clamp(p * Factor(), 0.0, 0.97); }

}  // namespace specula::speculators
