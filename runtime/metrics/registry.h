// speculad's Prometheus metrics: a registry of counter, gauge and
// histogram families with labels, rendered in the text exposition format
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
// Small on purpose (no client library in Debian 12 for C++): what the
// daemon needs and nothing else. The registry is an object the daemon owns
// (no global state); families live as long as it, and their methods are
// thread-safe (worker threads count, the metrics thread renders).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace specula::metrics {

// Label values in the order of the family's label names.
using LabelValues = std::vector<std::string>;

class Family {
 public:
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;
  const std::string& name() const { return name_; }
  // Drops the series of these labels (e.g. a destroyed session's).
  void Remove(const LabelValues& labels);
  // Drops every series (scrape-time gauges, refilled by a collector).
  void Clear();
  // "# HELP", "# TYPE" and the samples.
  void Render(std::string& out) const;

 protected:
  Family(std::string name, std::string help, std::vector<std::string> label_names, const char* type)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), type_(type) {}
  struct Series {
    double value = 0;                 // counter, gauge; histogram: the sum
    std::vector<uint64_t> buckets;    // histogram: per-bucket (not cumulative) counts
    uint64_t count = 0;               // histogram
  };
  // The series of `labels` (created at zero), with mu_ held.
  Series& At(const LabelValues& labels);
  virtual void RenderSeries(std::string& out, const std::string& labels, const Series& s) const;

  mutable std::mutex mu_;
  std::string name_, help_;
  std::vector<std::string> label_names_;
  const char* type_;
  std::map<LabelValues, Series> series_;  // guarded by mu_; sorted: stable output

  friend class Registry;
};

class Counter final : public Family {
 public:
  void Inc(const LabelValues& labels = {}, double by = 1);
  // For a count kept elsewhere (the speculation status) copied in at scrape
  // time: it only grows where it is kept.
  void Set(const LabelValues& labels, double value);

 private:
  using Family::Family;
  friend class Registry;
};

class Gauge final : public Family {
 public:
  void Set(const LabelValues& labels, double value);
  void Add(const LabelValues& labels, double delta);

 private:
  using Family::Family;
  friend class Registry;
};

class Histogram final : public Family {
 public:
  void Observe(const LabelValues& labels, double value);

 private:
  Histogram(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds)
      : Family(std::move(name), std::move(help), std::move(label_names), "histogram"), bounds_(std::move(bounds)) {}
  void RenderSeries(std::string& out, const std::string& labels, const Series& s) const override;
  std::vector<double> bounds_;  // upper bounds, ascending; +Inf is implied
  friend class Registry;
};

// Latency buckets in seconds, 5 ms to 2 min: an echo commits in tens of
// ms, a CRIU restore or a build in seconds to minutes.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Names follow Prometheus' conventions (counters end in _total, units in
  // the name); the returned family lives as long as the registry.
  Counter& AddCounter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Gauge& AddGauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  Histogram& AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                          std::vector<double> bounds);
  // Runs at every scrape before rendering, for values read rather than
  // counted (sessions, live branches). Register them before serving.
  void AddCollector(std::function<void()> collect);

  // Runs the collectors, then renders every family in registration order.
  std::string Scrape() const;

 private:
  std::vector<std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> collectors_;
};

// The text format's escaping: label values escape \, " and newline; HELP
// text escapes \ and newline.
std::string EscapeLabelValue(const std::string& v);
std::string EscapeHelp(const std::string& v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN as spelled
// by the format.
std::string FormatValue(double v);

}  // namespace specula::metrics
