#include "runtime/metrics/registry.h"

#include <cmath>
#include <cstdio>

namespace specula::metrics {

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.17g", v);
  }
  return buf;
}

std::vector<double> LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

void Family::Remove(const LabelValues& labels) {
  std::lock_guard lock(mu_);
  series_.erase(labels);
}

void Family::Clear() {
  std::lock_guard lock(mu_);
  series_.clear();
}

Family::Series& Family::At(const LabelValues& labels) {
  // A call with the wrong number of values is a bug of the caller; pad or
  // cut rather than render a line the parser rejects.
  LabelValues key = labels;
  key.resize(label_names_.size());
  return series_[key];
}

void Family::RenderSeries(std::string& out, const std::string& labels, const Series& s) const {
  out += name_;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + FormatValue(s.value) + "\n";
}

void Family::Render(std::string& out) const {
  out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + type_ + "\n";
  std::lock_guard lock(mu_);
  for (const auto& [values, s] : series_) {
    std::string labels;
    for (size_t i = 0; i < label_names_.size(); ++i) {
      if (i > 0) labels += ",";
      labels += label_names_[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
    }
    RenderSeries(out, labels, s);
  }
}

void Counter::Inc(const LabelValues& labels, double by) {
  std::lock_guard lock(mu_);
  At(labels).value += by;
}

void Counter::Set(const LabelValues& labels, double value) {
  std::lock_guard lock(mu_);
  At(labels).value = value;
}

void Gauge::Set(const LabelValues& labels, double value) {
  std::lock_guard lock(mu_);
  At(labels).value = value;
}

void Gauge::Add(const LabelValues& labels, double delta) {
  std::lock_guard lock(mu_);
  At(labels).value += delta;
}

void Histogram::Observe(const LabelValues& labels, double value) {
  std::lock_guard lock(mu_);
  Series& s = At(labels);
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.value += value;
}

void Histogram::RenderSeries(std::string& out, const std::string& labels, const Series& s) const {
  std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
    out += name_ + "_bucket{" + labels + sep + "le=\"" + FormatValue(bounds_[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += name_ + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(s.count) + "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name_ + "_sum" + braces + " " + FormatValue(s.value) + "\n";
  out += name_ + "_count" + braces + " " + std::to_string(s.count) + "\n";
}

Counter& Registry::AddCounter(std::string name, std::string help, std::vector<std::string> label_names) {
  auto* f = new Counter(std::move(name), std::move(help), std::move(label_names), "counter");
  families_.emplace_back(f);
  return *f;
}

Gauge& Registry::AddGauge(std::string name, std::string help, std::vector<std::string> label_names) {
  auto* f = new Gauge(std::move(name), std::move(help), std::move(label_names), "gauge");
  families_.emplace_back(f);
  return *f;
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                                  std::vector<double> bounds) {
  auto* f = new Histogram(std::move(name), std::move(help), std::move(label_names), std::move(bounds));
  families_.emplace_back(f);
  return *f;
}

void Registry::AddCollector(std::function<void()> collect) { collectors_.push_back(std::move(collect)); }

std::string Registry::Scrape() const {
  for (const auto& c : collectors_) c();
  std::string out;
  for (const auto& f : families_) f->Render(out);
  return out;
}

}  // namespace specula::metrics
