#include "speculators/count_table.h"

#include <algorithm>
#include <cmath>

namespace specula::speculators {

using Json = nlohmann::json;

StepEvent MakeEvent(const SessionState& state, const Step& step) {
  StepEvent e;
  e.keys = state.keys();
  e.slot_names.reserve(state.slots().size());
  for (const auto& s : state.slots()) e.slot_names.push_back(s.name);
  CommandInfo info = AnalyzeCommand(step.command);
  if (!info.heredoc) e.templates = Abstract(info.text, state.slots());
  return e;
}

double ContextStats::Avail(const std::string& tmpl) const {
  if (!HasSlots(tmpl)) return n;
  double a = n;
  for (const auto& name : TemplateSlotNames(tmpl)) {
    auto it = slot_avail.find(name);
    a = std::min(a, it == slot_avail.end() ? 0.0 : it->second);
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
        // Slot availability is needed only for the slots that templates use.
        for (auto s = c.slot_avail.begin(); s != c.slot_avail.end();) {
          s = s->second < 1 ? c.slot_avail.erase(s) : std::next(s);
        }
      }
      ++it;
    }
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
      lv[kv->first] = {{"n", Round(c.n)}, {"s", std::move(slots)}, {"t", std::move(t)}};
    }
    levels.push_back(std::move(lv));
  }
  return {{"steps", Round(steps_)}, {"levels", std::move(levels)}};
}

Result<CountTable> CountTable::FromJson(const Json& j) {
  CountTable t;
  try {
    if (!j.is_object() || !j.contains("levels") || !j["levels"].is_array() || j["levels"].size() != kLevels) {
      return Error(Code::kInvalidArgument, "count table: \"levels\" must be an array of " + std::to_string(kLevels));
    }
    t.steps_ = j.value("steps", 0.0);
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
        for (const auto& e : c.at("t")) {
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
