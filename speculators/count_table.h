// Template counts per context: for every context key (session_state.h) how
// many steps were seen, how often each slot had a value there, and how often
// each template was the command that followed. A template's hit rate in a
// context is hits / availability (the steps in which all its slots had a
// value), smoothed towards the next more general context.
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/error.h"
#include "speculators/session_state.h"

namespace specula::speculators {

// What one step contributes to learning: the context it was predicted in,
// which slots had values, and the templates of the command that came.
struct StepEvent {
  ContextKeys keys;
  std::vector<std::string> slot_names;
  std::vector<std::string> templates;
  std::string task;  // for the distinct-task count (privacy of the shipped model)
};

// Builds the event of `step` as predicted from `state` (before pushing it).
StepEvent MakeEvent(const SessionState& state, const Step& step);
StepEvent MakeEvent(const SessionState& state, const CommandInfo& command);

struct ContextStats {
  double n = 0;
  std::unordered_map<std::string, double> slot_avail;  // slot name -> steps where it had a value
  std::unordered_map<std::string, double> hits;        // template -> steps whose command it was
  std::vector<std::pair<std::string, double>> top;     // best templates by hits (after Finalize)
};

struct PruneOptions {
  double min_hits = 2;       // templates seen fewer times are dropped
  double min_context = 2;    // contexts seen fewer times are dropped
  size_t min_tasks = 2;      // a template must come from this many tasks (level 0)
  std::array<size_t, kLevels> top = {24, 16, 12, 10, 8};  // templates kept per context
};

class CountTable {
 public:
  void Add(const StepEvent& e, double weight = 1);
  // Sorts each context's templates into `top` (best first, ties by text),
  // keeping `top[level]` of them with at least min_hits; drops the rest when
  // `drop` (model export), keeps the full counts otherwise.
  void Finalize(const PruneOptions& o, bool drop);
  const ContextStats* Find(size_t level, const std::string& key) const;
  // Steps of context `c` (at `level`) in which every slot of a template had
  // a value: the minimum over its slots (an upper bound). A pruned context
  // keeps the counts of its own templates' slots only; for other slots it
  // is n times the slot's rate over the whole level.
  double Avail(size_t level, const ContextStats& c, const std::vector<std::string>& slot_names) const;
  bool empty() const { return steps_ == 0; }
  double steps() const { return steps_; }
  // Tasks a level-0 template was seen in (tracked while adding).
  size_t TemplateTasks(const std::string& tmpl) const;

  nlohmann::json ToJson() const;
  static Result<CountTable> FromJson(const nlohmann::json& j);

  const std::array<std::unordered_map<std::string, ContextStats>, kLevels>& levels() const { return levels_; }

 private:
  std::array<std::unordered_map<std::string, ContextStats>, kLevels> levels_;
  // Per level: the share of steps in which each slot had a value (set by
  // Finalize when pruning, read from the model file).
  std::array<std::unordered_map<std::string, double>, kLevels> rates_;
  bool pruned_ = false;
  std::unordered_map<std::string, std::pair<std::string, size_t>> tasks_;  // template -> (last task, count)
  double steps_ = 0;
};

}  // namespace specula::speculators
