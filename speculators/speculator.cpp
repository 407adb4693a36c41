#include "speculators/speculator.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace specula::speculators {

std::string TrimCommand(std::string_view command) {
  const char* ws = " \t\r\n\v\f";
  size_t b = command.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  size_t e = command.find_last_not_of(ws);
  return std::string(command.substr(b, e - b + 1));
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string TaskKey(const History& history) {
  if (!history.task_id.empty()) return history.task_id;
  if (history.task.empty()) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "task:%016llx", static_cast<unsigned long long>(Fnv1a64(history.task)));
  return buf;
}

std::vector<Candidate> NormalizeCandidates(std::vector<Candidate> candidates, int k) {
  for (auto& c : candidates) {
    c.command = TrimCommand(c.command);
    c.confidence = std::clamp(c.confidence, 0.0, 1.0);
    if (!(c.confidence == c.confidence)) c.confidence = 0;  // NaN
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.confidence > b.confidence; });
  std::vector<Candidate> out;
  std::set<std::string> seen;
  for (auto& c : candidates) {
    if (static_cast<int>(out.size()) >= k) break;
    if (c.command.empty() || !seen.insert(c.command).second) continue;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Candidate> MergeCandidates(const std::vector<std::vector<Candidate>>& lists, int k, double cap) {
  struct Acc {
    Candidate best;
    double miss = 1;  // prod(1 - p)
    std::vector<std::string> others;
  };
  std::vector<Acc> acc;
  for (const auto& list : lists) {
    std::set<std::string> in_list;
    for (const auto& c0 : list) {
      Candidate c = c0;
      c.command = TrimCommand(c.command);
      c.confidence = std::clamp(c.confidence, 0.0, 1.0);
      if (!(c.confidence == c.confidence)) c.confidence = 0;
      if (c.command.empty() || !in_list.insert(c.command).second) continue;
      auto it = std::find_if(acc.begin(), acc.end(), [&](const Acc& a) { return a.best.command == c.command; });
      if (it == acc.end()) {
        acc.push_back({c, 1 - c.confidence, {}});
        continue;
      }
      it->miss *= 1 - c.confidence;
      if (c.confidence > it->best.confidence) {
        it->others.push_back(it->best.source);
        it->best = c;
      } else {
        it->others.push_back(c.source);
      }
    }
  }
  std::vector<Candidate> out;
  for (auto& a : acc) {
    Candidate c = a.best;
    if (!a.others.empty()) {
      // Agreement of independent guessers raises the confidence, but they
      // are not independent: halfway from the best to the noisy-or.
      double noisy_or = 1 - a.miss;
      c.confidence = std::min(cap, std::max(c.confidence, c.confidence + 0.5 * (noisy_or - c.confidence)));
      for (const auto& o : a.others) {
        if (c.source.find(o) == std::string::npos) c.source += "+" + o;
      }
    }
    out.push_back(std::move(c));
  }
  return NormalizeCandidates(std::move(out), k);
}

}  // namespace specula::speculators
