#include "agents/builtin_speculators.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace specula::agents {
namespace {

constexpr int kPerSource = 3;
// Laplace-style smoothing of measured hit rates, and the confidence of a
// (source, rank) never seen during calibration.
constexpr double kAlpha = 0.5, kBeta = 1.5, kUnmeasured = 0.02;

std::vector<std::string> Commands(const speculators::History& h) {
  std::vector<std::string> out;
  out.reserve(h.steps.size());
  for (const auto& s : h.steps) out.push_back(TrimCommand(s.command));
  return out;
}

// The n most frequent followers (ties by text, for determinism) as Raw
// proposals of `source`, with their support bucket.
void AddTop(const std::map<std::string, int>& counts, int n, const char* source,
            std::vector<NgramSpeculator::Raw>& out) {
  std::vector<std::pair<int, std::string>> v;
  int total = 0;
  for (const auto& [cmd, c] : counts) {
    v.emplace_back(-c, cmd);
    total += c;
  }
  std::sort(v.begin(), v.end());
  for (int i = 0; i < n && i < static_cast<int>(v.size()); ++i) {
    int bucket = total > 0 ? (-v[i].first * 4) / total : 0;
    out.push_back({v[i].second, source, i, bucket});
  }
}

speculators::History PrefixOf(const Trajectory& t, size_t n) {
  speculators::History h;
  h.task = t.task;
  for (size_t i = 0; i < n; ++i) {
    h.steps.push_back(ToSpeculatorStep({t.steps[i].command, t.steps[i].recorded.value_or(ActionOutcome{})}));
  }
  return h;
}

}  // namespace

speculators::Step ToSpeculatorStep(const Turn& turn) {
  speculators::Step s;
  s.command = turn.command;
  s.exit_code = turn.outcome.exit_code;
  s.signal = turn.outcome.signal;
  s.stdout_text = turn.outcome.stdout_text;
  s.stderr_text = turn.outcome.stderr_text;
  return s;
}

speculators::History ToSpeculatorHistory(const History& history, const std::string& agent,
                                         const std::string& task_id) {
  speculators::History h;
  h.agent = agent;
  h.task = history.task;
  h.task_id = task_id;
  h.steps.reserve(history.turns.size());
  for (const auto& t : history.turns) h.steps.push_back(ToSpeculatorStep(t));
  return h;
}

speculators::History ToSpeculatorHistory(const Trajectory& t, const std::string& agent,
                                         const std::string& task_id) {
  speculators::History h;
  h.agent = agent;
  h.task = t.task;
  h.task_id = task_id;
  h.steps.reserve(t.steps.size());
  for (const auto& s : t.steps) {
    h.steps.emplace_back();
    speculators::Step& st = h.steps.back();
    st.command = s.command;
    st.has_outcome = s.recorded.has_value();
    if (const ActionOutcome* r = s.recorded ? &*s.recorded : nullptr) {
      st.exit_code = r->exit_code;
      st.signal = r->signal;
      st.stdout_text = r->stdout_text;
      st.stderr_text = r->stderr_text;
    }
  }
  return h;
}

void NgramCounts::Add(const Trajectory& t) {
  std::vector<std::string> c;
  for (const auto& s : t.steps) c.push_back(TrimCommand(s.command));
  if (c.empty()) return;
  ++first[c[0]];
  for (size_t i = 1; i < c.size(); ++i) {
    ++bigram[c[i - 1]][c[i]];
    if (i >= 2) ++trigram[{c[i - 2], c[i - 1]}][c[i]];
  }
}

std::vector<NgramSpeculator::Raw> NgramSpeculator::RawCandidates(const NgramCounts& counts,
                                                                 const speculators::History& history,
                                                                 int per_source) {
  std::vector<Raw> out;
  auto cmds = Commands(history);
  size_t n = cmds.size();
  if (n == 0) {
    AddTop(counts.first, per_source, "corpus-first", out);
    return out;
  }
  const std::string& last = cmds[n - 1];
  for (size_t j = n - 1; j-- > 0;) {
    if (cmds[j] == last) {
      out.push_back({cmds[j + 1], "session-repeat", 0, 4});
      break;
    }
  }
  // Agents re-run an earlier check after changing something ("test, fix,
  // test"); each distance back is calibrated on its own (rank = distance-2).
  for (size_t d = 2; d <= 5 && d <= n; ++d) {
    const std::string& c = cmds[n - d];
    bool seen_closer = c == last;
    for (size_t e = 2; e < d; ++e) seen_closer = seen_closer || cmds[n - e] == c;
    if (!seen_closer) out.push_back({c, "session-rerun", static_cast<int>(d - 2), 4});
  }
  if (n >= 2) {
    auto it = counts.trigram.find({cmds[n - 2], last});
    if (it != counts.trigram.end()) AddTop(it->second, per_source, "corpus-trigram", out);
  }
  auto it = counts.bigram.find(last);
  if (it != counts.bigram.end()) AddTop(it->second, per_source, "corpus-bigram", out);
  return out;
}

NgramSpeculator NgramSpeculator::Train(const std::vector<Trajectory>& corpus,
                                       const std::string& exclude) {
  NgramSpeculator s;
  std::vector<const Trajectory*> train;
  for (const auto& t : corpus) {
    if (t.name != exclude) train.push_back(&t);
  }
  for (const auto* t : train) s.counts_.Add(*t);
  // Calibration: predict each remaining trajectory U with a model trained on
  // the others (never on U, never on `exclude`) and count, per source and
  // rank, how often the proposal was the command U really ran next.
  for (const auto* u : train) {
    NgramCounts without_u;
    for (const auto* t : train) {
      if (t != u) without_u.Add(*t);
    }
    for (size_t i = 0; i < u->steps.size(); ++i) {
      speculators::History h = PrefixOf(*u, i);
      std::string truth = TrimCommand(u->steps[i].command);
      for (const auto& raw : RawCandidates(without_u, h, kPerSource)) {
        auto& [hits, tries] = s.calibration_[{raw.source, raw.rank, raw.bucket}];
        tries += 1;
        if (raw.command == truth) hits += 1;
      }
    }
  }
  return s;
}

double NgramSpeculator::Confidence(const Raw& raw) const {
  auto it = calibration_.find({raw.source, raw.rank, raw.bucket});
  if (it == calibration_.end() || it->second.second == 0) return kUnmeasured;
  return (it->second.first + kAlpha) / (it->second.second + kAlpha + kBeta);
}

Result<std::vector<Candidate>> NgramSpeculator::Propose(const speculators::History& history, int k) {
  std::vector<Candidate> merged;
  for (auto& raw : RawCandidates(counts_, history, kPerSource)) {
    double conf = Confidence(raw);
    auto same = std::find_if(merged.begin(), merged.end(),
                             [&](const Candidate& c) { return c.command == raw.command; });
    if (same == merged.end()) {
      merged.push_back({raw.command, conf, raw.source});
    } else if (conf > same->confidence) {
      same->confidence = conf;
      same->source = raw.source;
    }
  }
  return NormalizeCandidates(std::move(merged), k);
}

OracleSpeculator::OracleSpeculator(Trajectory trajectory, OracleOptions options)
    : trajectory_(std::move(trajectory)), options_(options), rng_(options.seed) {}

std::string OracleSpeculator::Name() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "oracle(p=%.2f,synthetic)", options_.accuracy);
  return buf;
}

Result<std::vector<Candidate>> OracleSpeculator::Propose(const speculators::History& history, int k) {
  if (options_.accuracy < 0 || options_.accuracy > 1) {
    return Error(Code::kInvalidArgument, "oracle accuracy must be in [0,1]");
  }
  size_t i = history.steps.size();
  if (i >= trajectory_.steps.size() || k <= 0) return std::vector<Candidate>{};
  std::string truth = TrimCommand(trajectory_.steps[i].command);
  std::vector<std::string> wrong;
  std::set<std::string> seen{truth};
  for (const auto& s : trajectory_.steps) {
    std::string c = TrimCommand(s.command);
    if (seen.insert(c).second) wrong.push_back(c);
  }
  std::shuffle(wrong.begin(), wrong.end(), rng_);
  double conf = options_.reported_confidence >= 0 ? options_.reported_confidence : options_.accuracy;
  std::bernoulli_distribution right(options_.accuracy);
  std::vector<Candidate> out;
  bool placed = false;
  size_t next_wrong = 0;
  for (int j = 0; j < k; ++j) {
    if (!placed && right(rng_)) {
      placed = true;
      out.push_back({truth, conf, "oracle"});
    } else if (next_wrong < wrong.size()) {
      out.push_back({wrong[next_wrong++], conf, "oracle"});
    } else {
      out.push_back({"true # oracle wrong guess " + std::to_string(j), conf, "oracle"});
    }
  }
  return out;
}

}  // namespace specula::agents
