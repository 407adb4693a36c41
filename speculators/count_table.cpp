#include "speculators/count_table.h"

#include <algorithm>
#include <cmath>

namespace specula::speculators {

using Json = nlohmann::json;

StepEvent MakeEvent(const SessionState& state, const Step& step) {
  return MakeEvent(state, AnalyzeCommand(step.command));
}

StepEvent MakeEvent(const SessionState& state, const CommandInfo& info) {
  StepEvent e;
  e.keys = state.keys();
  e.slot_names.reserve(state.slots().size());
  for (const auto& s : state.slots()) e.slot_names.push_back(s.name);
  if (!info.heredoc) e.templates = Abstract(info.text, state.slots());
  return e;
}

double CountTable::Avail(size_t level, const ContextStats& c, const std::vector<std::string>& slot_names) const {
  double a = c.n;
  for (const auto& name : slot_names) {
    auto it = c.slot_avail.find(name);
    double v;
    if (it != c.slot_avail.end()) {
      v = it->second;
    } else if (pruned_) {
      auto r = rates_[level].find(name);
      v = r == rates_[level].end() ? 0.0 : c.n * r->second;
    } else {
      v = 0;
    }
    a = std::min(a, v);
  }
  return a;
}

void CountTable::Add(const StepEvent& e, double weight) {
  steps_ += weight;
  for (size_t l = 0; l < kLevels; ++l) {
    if (e.keys[l].empty()) continue;
    ContextStats& c = levels_[l][e.keys[l]];
    c.n += weight;
    for (const auto& s : e.slot_names) c.slot_avail[s] += weight;
    for (const auto& t : e.templates) c.hits[t] += weight;
  }
  if (!e.task.empty()) {
    for (const auto& t : e.templates) {
      auto& [last, count] = tasks_[t];
      if (last != e.task) {
        last = e.task;
        ++count;
      }
    }
  }
}

size_t CountTable::TemplateTasks(const std::string& tmpl) const {
  auto it = tasks_.find(tmpl);
  return it == tasks_.end() ? 0 : it->second.second;
}

void CountTable::Finalize(const PruneOptions& o, bool drop) {
  for (size_t l = 0; l < kLevels; ++l) {
    auto& level = levels_[l];
    for (auto it = level.begin(); it != level.end();) {
      ContextStats& c = it->second;
      if (drop && c.n < o.min_context) {
        it = level.erase(it);
        continue;
      }
      c.top.clear();
      for (const auto& [t, h] : c.hits) {
        if (h + 1e-9 < o.min_hits) continue;
        if (drop && o.min_tasks > 1 && !tasks_.empty() && TemplateTasks(t) < o.min_tasks) continue;
        c.top.emplace_back(t, h);
      }
      std::sort(c.top.begin(), c.top.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
      });
      if (c.top.size() > o.top[l]) c.top.resize(o.top[l]);
      if (drop) {
        std::unordered_map<std::string, double> kept(c.top.begin(), c.top.end());
        c.hits = std::move(kept);
      }
      ++it;
    }
  }
  if (drop) {
    // Slot availability: each level's overall rates, and per context only
    // the slots its own templates use.
    for (size_t l = 0; l < kLevels; ++l) {
      std::unordered_map<std::string, double> sum;
      double n = 0;
      for (const auto& [key, c] : levels_[l]) {
        n += c.n;
        for (const auto& [name, a] : c.slot_avail) sum[name] += a;
      }
      rates_[l].clear();
      for (const auto& [name, a] : sum) {
        if (n > 0) rates_[l][name] = a / n;
      }
      for (auto& [key, c] : levels_[l]) {
        std::unordered_map<std::string, double> keep;
        for (const auto& [t, h] : c.top) {
          for (const auto& name : TemplateSlotNames(t)) {
            auto it = c.slot_avail.find(name);
            keep[name] = it == c.slot_avail.end() ? 0.0 : it->second;
          }
        }
        c.slot_avail = std::move(keep);
      }
    }
    pruned_ = true;
  }
  if (drop) tasks_.clear();
}

const ContextStats* CountTable::Find(size_t level, const std::string& key) const {
  if (level >= kLevels || key.empty()) return nullptr;
  auto it = levels_[level].find(key);
  return it == levels_[level].end() ? nullptr : &it->second;
}

namespace {
// Counts are stored rounded to 3 decimals (weights may be fractional).
double Round(double x) { return std::round(x * 1000) / 1000; }
}  // namespace

Json CountTable::ToJson() const {
  Json levels = Json::array();
  for (size_t l = 0; l < kLevels; ++l) {
    // Sorted keys: the model file is deterministic.
    std::vector<const std::pair<const std::string, ContextStats>*> keys;
    for (const auto& kv : levels_[l]) keys.push_back(&kv);
    std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return a->first < b->first; });
    Json lv = Json::object();
    for (const auto* kv : keys) {
      const ContextStats& c = kv->second;
      Json slots = Json::object();
      std::vector<std::pair<std::string, double>> avail(c.slot_avail.begin(), c.slot_avail.end());
      std::sort(avail.begin(), avail.end());
      for (const auto& [n, a] : avail) slots["{" + n + "}"] = Round(a);
      Json t = Json::array();
      for (const auto& [tmpl, h] : c.top) t.push_back(Json::array({tmpl, Round(h)}));
      Json ctx = {{"n", Round(c.n)}};
      if (!slots.empty()) ctx["s"] = std::move(slots);
      if (!t.empty()) ctx["t"] = std::move(t);
      lv[kv->first] = std::move(ctx);
    }
    levels.push_back(std::move(lv));
  }
  Json rates = Json::array();
  for (size_t l = 0; l < kLevels; ++l) {
    std::vector<std::pair<std::string, double>> r(rates_[l].begin(), rates_[l].end());
    std::sort(r.begin(), r.end());
    Json lr = Json::object();
    for (const auto& [n, v] : r) lr[n] = std::round(v * 10000) / 10000;
    rates.push_back(std::move(lr));
  }
  return {{"steps", Round(steps_)}, {"pruned", pruned_}, {"slot_rates", std::move(rates)}, {"levels", std::move(levels)}};
}

Result<CountTable> CountTable::FromJson(const Json& j) {
  CountTable t;
  try {
    if (!j.is_object() || !j.contains("levels") || !j["levels"].is_array() || j["levels"].size() != kLevels) {
      return Error(Code::kInvalidArgument, "count table: \"levels\" must be an array of " + std::to_string(kLevels));
    }
    t.steps_ = j.value("steps", 0.0);
    auto pruned = j.find("pruned");
    t.pruned_ = pruned != j.end() && *pruned == true;
    if (j.contains("slot_rates")) {
      const Json& r = j["slot_rates"];
      if (!r.is_array() || r.size() != kLevels) return Error(Code::kInvalidArgument, "count table: bad slot_rates");
      for (size_t l = 0; l < kLevels; ++l) {
        if (!r[l].is_object()) return Error(Code::kInvalidArgument, "count table: bad slot_rates");
        for (const auto& [name, v] : r[l].items()) {
          double x = v.get<double>();
          if (!(x >= 0 && x <= 1)) return Error(Code::kInvalidArgument, "count table: slot rate out of [0,1]");
          t.rates_[l][name] = x;
        }
      }
    }
    for (size_t l = 0; l < kLevels; ++l) {
      const Json& lv = j["levels"][l];
      if (!lv.is_object()) return Error(Code::kInvalidArgument, "count table: level is not an object");
      for (const auto& [key, c] : lv.items()) {
        if (!c.is_object()) return Error(Code::kInvalidArgument, "count table: context is not an object");
        ContextStats s;
        s.n = c.at("n").get<double>();
        if (!(s.n >= 0) || !std::isfinite(s.n)) return Error(Code::kInvalidArgument, "count table: bad n");
        if (c.contains("s")) {
          for (const auto& [name, v] : c["s"].items()) {
            // "{NAME}" in the file.
            if (name.size() < 3 || name.front() != '{' || name.back() != '}') {
              return Error(Code::kInvalidArgument, "count table: bad slot name " + name);
            }
            double a = v.get<double>();
            if (!(a >= 0) || !std::isfinite(a)) return Error(Code::kInvalidArgument, "count table: bad slot count");
            s.slot_avail[name.substr(1, name.size() - 2)] = a;
          }
        }
        for (const auto& e : c.contains("t") ? c["t"] : Json::array()) {
          if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
            return Error(Code::kInvalidArgument, "count table: template entry must be [text, hits]");
          }
          std::string tmpl = e[0].get<std::string>();
          double h = e[1].get<double>();
          if (tmpl.empty() || tmpl.size() > 4 * kMaxTemplateBytes || !(h >= 0) || !std::isfinite(h)) {
            return Error(Code::kInvalidArgument, "count table: bad template entry");
          }
          s.top.emplace_back(tmpl, h);
          s.hits[tmpl] = h;
        }
        t.levels_[l][key] = std::move(s);
      }
    }
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("count table: ") + e.what());
  }
  return t;
}

}  // namespace specula::speculators
