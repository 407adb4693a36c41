#include "speculators/evaluate.h"

#include <algorithm>
#include <cstdio>

#include "speculators/features.h"

namespace specula::speculators {

using Json = nlohmann::json;

namespace {

double Rate(size_t a, size_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }

std::string Short(const std::string& s, size_t n = 100) {
  std::string o;
  for (char c : s.substr(0, n)) o += c == '\n' ? ' ' : c;
  if (s.size() > n) o += "...";
  return o;
}

}  // namespace

void HitCounts::Merge(const HitCounts& o) {
  steps += o.steps;
  read_only_steps += o.read_only_steps;
  heredoc_steps += o.heredoc_steps;
  for (const auto& [k, h] : o.hits) hits[k] += h;
  for (const auto& [k, h] : o.read_only_hits) read_only_hits[k] += h;
}

void EvalReport::Merge(const EvalReport& o) {
  if (speculator.empty()) speculator = o.speculator;
  size_t before = all.steps;
  all.Merge(o.all);
  for (const auto& [s, c] : o.by_source) by_source[s].Merge(c);
  for (const auto& [s, n] : o.hits_by_candidate_source) hits_by_candidate_source[s] += n;
  reliability.Merge(o.reliability);
  reliability_top1.Merge(o.reliability_top1);
  double w = all.steps ? static_cast<double>(before) / static_cast<double>(all.steps) : 0;
  mean_us = w * mean_us + (1 - w) * o.mean_us;
  p99_us = std::max(p99_us, o.p99_us);
  sessions += o.sessions;
  errors += o.errors;
  misses.insert(misses.end(), o.misses.begin(), o.misses.end());
}

Json HitCounts::ToJson() const {
  Json hk = Json::object(), ro = Json::object();
  for (const auto& [k, h] : hits) hk["hit@" + std::to_string(k)] = Rate(h, steps);
  for (const auto& [k, h] : read_only_hits) ro["hit@" + std::to_string(k)] = Rate(h, read_only_steps);
  Json share = Json::object();
  for (const auto& [k, h] : hits) {
    auto it = read_only_hits.find(k);
    share["hit@" + std::to_string(k)] = Rate(it == read_only_hits.end() ? 0 : it->second, h);
  }
  return {{"steps", steps},
          {"rates", hk},
          {"read_only_steps", read_only_steps},
          {"read_only_step_share", Rate(read_only_steps, steps)},
          {"read_only_rates", ro},
          {"read_only_share_of_hits", share},
          {"heredoc_step_share", Rate(heredoc_steps, steps)}};
}

Json EvalReport::ToJson() const {
  Json src = Json::object();
  for (const auto& [s, c] : by_source) src[s] = c.ToJson();
  Json cs = Json::object();
  for (const auto& [s, n] : hits_by_candidate_source) cs[s] = n;
  Json ms = Json::array();
  for (const auto& m : misses) {
    Json p = Json::array();
    for (const auto& c : m.proposed) p.push_back({{"command", c.command}, {"confidence", c.confidence}, {"source", c.source}});
    ms.push_back({{"source", m.source}, {"name", m.name}, {"index", m.index}, {"previous", m.previous},
                  {"truth", m.truth}, {"rank", m.rank}, {"truth_source", m.truth_source}, {"proposed", p}});
  }
  return {{"speculator", speculator},
          {"sessions", sessions},
          {"all", all.ToJson()},
          {"by_source", src},
          {"hits_by_candidate_source", cs},
          {"reliability", reliability.ToJson()},
          {"reliability_top1", reliability_top1.ToJson()},
          {"mean_us_per_proposal", mean_us},
          {"p99_us_per_proposal", p99_us},
          {"errors", errors},
          {"misses", ms}};
}

std::string EvalReport::ToText() const {
  std::string s;
  char buf[512];
  auto line = [&](const std::string& name, const HitCounts& c) {
    std::snprintf(buf, sizeof buf, "%-28s %7zu", name.c_str(), c.steps);
    s += buf;
    for (const auto& [k, h] : c.hits) {
      std::snprintf(buf, sizeof buf, "  hit@%d %5.1f%%", k, 100 * Rate(h, c.steps));
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "   read-only steps %4.1f%%", 100 * Rate(c.read_only_steps, c.steps));
    s += buf;
    for (const auto& [k, h] : c.read_only_hits) {
      std::snprintf(buf, sizeof buf, "  ro-hit@%d %5.1f%%", k, 100 * Rate(h, c.read_only_steps));
      s += buf;
    }
    s += "\n";
  };
  std::snprintf(buf, sizeof buf, "speculator %s, %zu sessions\n%-28s %7s\n", speculator.c_str(), sessions, "source",
                "steps");
  s += buf;
  line("all", all);
  for (const auto& [src, c] : by_source) line(src, c);
  if (!all.hits.empty()) {
    int kmax = all.hits.rbegin()->first;
    auto ro = all.read_only_hits.find(kmax);
    std::snprintf(buf, sizeof buf, "read-only share of hit@%d: %.1f%%; here-document steps: %.1f%%\n", kmax,
                  100 * Rate(ro == all.read_only_hits.end() ? 0 : ro->second, all.hits.at(kmax)),
                  100 * Rate(all.heredoc_steps, all.steps));
    s += buf;
    s += "hits@" + std::to_string(kmax) + " by candidate source:";
    for (const auto& [src, n] : hits_by_candidate_source) s += " " + src + "=" + std::to_string(n);
    s += "\n";
  }
  s += "reliability (every proposed candidate):\n" + reliability.ToText();
  s += "reliability (first candidate):\n" + reliability_top1.ToText();
  std::snprintf(buf, sizeof buf, "time per proposal: mean %.1f us, p99 %.1f us; errors %zu\n", mean_us, p99_us, errors);
  s += buf;
  if (!misses.empty()) {
    s += "sample of misses:\n";
    for (const auto& m : misses) {
      s += "  [" + m.name + " #" + std::to_string(m.index) + "] after `" + Short(m.previous, 80) + "`\n    truth: " +
           Short(m.truth) + (m.rank >= 0 ? "  (rank " + std::to_string(m.rank + 1) + ", " + m.truth_source + ")" : "") + "\n";
      for (const auto& c : m.proposed) {
        std::snprintf(buf, sizeof buf, "    %.3f %-22s %s\n", c.confidence, c.source.c_str(), Short(c.command).c_str());
        s += buf;
      }
    }
  }
  return s;
}

EvalReport Evaluate(const SpeculatorFactory& make, const std::vector<EvalSession>& sessions, const EvalOptions& o) {
  EvalReport r;
  int kmax = 1;
  for (int k : o.ks) kmax = std::max(kmax, k);
  std::vector<double> times;
  std::vector<Miss> all_misses;
  for (const auto& es : sessions) {
    auto spec = make(es);
    if (!spec) {
      ++r.errors;
      continue;
    }
    if (r.speculator.empty()) r.speculator = spec->Name();
    ++r.sessions;
    History h;
    h.agent = es.history.agent;
    h.task = es.history.task;
    h.task_id = es.history.task_id;
    HitCounts& src = r.by_source[es.source];
    for (size_t i = 0; i < es.history.steps.size(); ++i) {
      const Step& step = es.history.steps[i];
      std::string truth = TrimCommand(step.command);
      auto t0 = std::chrono::steady_clock::now();
      auto proposed = spec->Propose(h, std::max(kmax, o.probe_k));
      auto t1 = std::chrono::steady_clock::now();
      times.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      std::vector<Candidate> cands;
      if (proposed.ok()) cands = std::move(*proposed);
      else ++r.errors;
      int rank = -1, deep_rank = -1;
      std::string deep_source;
      for (size_t j = 0; j < cands.size(); ++j) {
        bool hit = cands[j].command == truth;
        if (hit && deep_rank < 0) {
          deep_rank = static_cast<int>(j);
          deep_source = cands[j].source;
        }
        if (static_cast<int>(j) >= kmax) continue;
        if (hit && rank < 0) rank = static_cast<int>(j);
        r.reliability.Add(cands[j].confidence, hit);
        if (j == 0) r.reliability_top1.Add(cands[j].confidence, hit);
      }
      CommandInfo info = AnalyzeCommand(truth);
      for (HitCounts* c : {&r.all, &src}) {
        ++c->steps;
        if (info.read_only) ++c->read_only_steps;
        if (info.heredoc) ++c->heredoc_steps;
        for (int k : o.ks) {
          bool hit = rank >= 0 && rank < k;
          c->hits[k] += hit ? 1 : 0;
          if (info.read_only) c->read_only_hits[k] += hit ? 1 : 0;
        }
      }
      if (rank >= 0) {
        r.hits_by_candidate_source[cands[static_cast<size_t>(rank)].source] += 1;
      } else if (o.misses && !info.heredoc) {
        Miss m;
        m.source = es.source;
        m.name = es.name;
        m.index = i;
        m.previous = i ? es.history.steps[i - 1].command : "";
        m.truth = truth;
        m.rank = deep_rank;
        m.truth_source = deep_source;
        cands.resize(std::min<size_t>(cands.size(), 3));
        m.proposed = cands;
        all_misses.push_back(std::move(m));
      }
      h.steps.push_back(step);
    }
    if (o.after_session) o.after_session(es);
  }
  if (!times.empty()) {
    double sum = 0;
    for (double t : times) sum += t;
    r.mean_us = sum / static_cast<double>(times.size());
    std::sort(times.begin(), times.end());
    r.p99_us = times[std::min(times.size() - 1, times.size() * 99 / 100)];
  }
  // A deterministic sample of the misses (heredocs excluded: no rule can
  // guess new content), spread over the whole list.
  if (o.misses && !all_misses.empty()) {
    std::vector<std::pair<uint64_t, size_t>> order;
    for (size_t i = 0; i < all_misses.size(); ++i) {
      // FNV-1a then a splitmix64 finaliser, so similar names spread out.
      uint64_t z = Fnv1a64(all_misses[i].name + "#" + std::to_string(all_misses[i].index)) + 0x9e3779b97f4a7c15ull;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      order.push_back({z ^ (z >> 31), i});
    }
    std::sort(order.begin(), order.end());
    for (size_t i = 0; i < order.size() && r.misses.size() < o.misses; ++i) {
      r.misses.push_back(all_misses[order[i].second]);
    }
  }
  return r;
}

}  // namespace specula::speculators
