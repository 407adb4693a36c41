#include "speculators/builtin.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace specula::speculators {
namespace {

double Logit(double p) {
  p = std::clamp(p, 1e-6, 1 - 1e-6);
  return std::log(p / (1 - p));
}

// The hierarchical estimate of `tmpl` in `table`: from `root`, each context
// level present shrinks towards the level before it.
double Chain(const CountTable& table, const ContextKeys& keys, const std::string& tmpl,
             const std::array<double, kLevels>& m, double root) {
  double p = root;
  for (size_t l = 0; l < kLevels; ++l) {
    const ContextStats* c = table.Find(l, keys[l]);
    if (!c) continue;
    auto it = c->hits.find(tmpl);
    double h = it == c->hits.end() ? 0 : it->second;
    double a = std::max(c->Avail(tmpl), h);
    p = (h + m[l] * p) / (a + m[l]);
  }
  return p;
}

struct Entry {
  std::string command;
  std::vector<std::string> templates;
  double g = 0, a = 0, s = 0, r = 0;
  bool slotted = false;
};

}  // namespace

void RunbookStore::Add(const std::string& task_key, std::vector<std::string> commands) {
  if (task_key.empty() || commands.empty()) return;
  std::lock_guard l(mu_);
  runs_[task_key].push_back(std::move(commands));
}

std::vector<std::vector<std::string>> RunbookStore::Get(const std::string& task_key) const {
  std::lock_guard l(mu_);
  auto it = runs_.find(task_key);
  return it == runs_.end() ? std::vector<std::vector<std::string>>{} : it->second;
}

size_t RunbookStore::size() const {
  std::lock_guard l(mu_);
  return runs_.size();
}

BuiltinSpeculator::BuiltinSpeculator(std::shared_ptr<const Model> model, BuiltinOptions options,
                                     std::shared_ptr<const RunbookStore> runbooks)
    : model_(std::move(model)), options_(options), store_(std::move(runbooks)) {}

Result<std::unique_ptr<BuiltinSpeculator>> BuiltinSpeculator::WithShippedModel(BuiltinOptions options) {
  SPECULA_ASSIGN_OR_RETURN(auto model, Model::Shipped());
  return std::make_unique<BuiltinSpeculator>(std::move(model), options);
}

void BuiltinSpeculator::Begin(const std::string& agent, const std::string& task, const std::string& task_id) {
  begun_ = true;
  agent_ = agent;
  task_ = task;
  task_id_ = task_id;
  History h;
  h.task = task;
  h.task_id = task_id;
  task_key_ = TaskKey(h);
  agent_table_ = model_ ? model_->Agent(agent) : nullptr;
  state_ = SessionState(task);
  session_ = CountTable();
  commands_.clear();
  online_.Reset();
  pending_.clear();
  pending_at_ = static_cast<size_t>(-1);
  runbooks_.clear();
  if (options_.use_runbooks && store_ && !task_key_.empty()) runbooks_ = store_->Get(task_key_);
}

void BuiltinSpeculator::SetRunbooks(std::vector<std::vector<std::string>> runs) { runbooks_ = std::move(runs); }

void BuiltinSpeculator::Observe(const Step& step) {
  std::string truth = TrimCommand(step.command);
  if (pending_at_ == state_.size()) online_.Record(pending_, truth);
  pending_.clear();
  pending_at_ = static_cast<size_t>(-1);
  if (options_.learn_session) session_.Add(MakeEvent(state_, step));
  state_.Push(step);
  commands_.push_back(std::move(truth));
}

std::vector<ScoredCandidate> BuiltinSpeculator::Score(bool apply_scorer) const {
  std::vector<ScoredCandidate> out;
  if (!model_) return out;
  const ModelParams& P = model_->params;
  const ContextKeys& keys = state_.keys();
  const Slots& slots = state_.slots();
  std::vector<Entry> entries;
  std::set<std::string> seen_templates;
  auto entry_for = [&](const std::string& command) -> Entry& {
    for (auto& e : entries) {
      if (e.command == command) return e;
    }
    entries.push_back({command, {}, 0, 0, 0, 0, false});
    return entries.back();
  };
  auto add_template = [&](const std::string& tmpl) {
    if (entries.size() >= options_.max_candidates * 2) return;
    if (!seen_templates.insert(tmpl).second) return;
    auto cmd = Instantiate(tmpl, slots);
    if (!cmd) return;
    entry_for(*cmd).templates.push_back(tmpl);
  };
  // Candidates: the best templates of every context level, from the agent's
  // table, the pooled table and the session's own table.
  for (const CountTable* t : {agent_table_, &model_->generic}) {
    if (!t) continue;
    for (size_t l = kLevels; l-- > 0;) {
      const ContextStats* c = t->Find(l, keys[l]);
      if (!c) continue;
      size_t n = std::min(c->top.size(), P.candidates_per_level[l]);
      for (size_t i = 0; i < n; ++i) add_template(c->top[i].first);
    }
  }
  if (options_.learn_session) {
    for (size_t l = kLevels; l-- > 1;) {
      const ContextStats* c = session_.Find(l, keys[l]);
      if (!c) continue;
      for (const auto& [tmpl, h] : c->hits) {
        if (h > 0) add_template(tmpl);
      }
    }
    // The session's most used templates overall.
    if (const ContextStats* c = session_.Find(0, keys[0])) {
      std::vector<std::pair<double, const std::string*>> best;
      for (const auto& [tmpl, h] : c->hits) best.push_back({h, &tmpl});
      size_t n = std::min(best.size(), P.candidates_per_level[0]);
      std::partial_sort(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(n), best.end(),
                        [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : *a.second < *b.second; });
      for (size_t i = 0; i < n; ++i) add_template(*best[i].second);
    }
  }
  // Runbooks: what earlier runs of this task did next.
  double runbook_runs = 0;
  if (!runbooks_.empty()) {
    size_t t = state_.size();
    const std::string* last = commands_.empty() ? nullptr : &commands_.back();
    std::vector<std::pair<std::string, double>> votes;
    for (const auto& run : runbooks_) {
      if (run.empty()) continue;
      runbook_runs += 1;
      std::vector<std::pair<size_t, double>> picks;  // (index, weight)
      if (!last) {
        picks.push_back({0, 1.0});
      } else {
        // The occurrence of the last command nearest to our position.
        size_t best = run.size();
        size_t best_d = static_cast<size_t>(-1);
        for (size_t i = 0; i < run.size(); ++i) {
          if (run[i] != *last) continue;
          size_t d = i > t ? i - t : t - i;
          if (d < best_d) {
            best_d = d;
            best = i;
          }
        }
        if (best < run.size()) {
          picks.push_back({best + 1, 1.0});
          picks.push_back({best + 2, 0.35});
        }
      }
      for (auto [i, w] : picks) {
        if (i >= run.size()) continue;
        auto it = std::find_if(votes.begin(), votes.end(), [&](const auto& v) { return v.first == run[i]; });
        if (it == votes.end()) votes.emplace_back(run[i], w);
        else it->second += w;
      }
    }
    for (const auto& [cmd, v] : votes) {
      Entry& e = entry_for(cmd);
      e.r = std::max(e.r, (v + 0.1) / (runbook_runs + 0.5));
    }
  }
  // Estimates per template, best per command.
  bool agent_known = agent_table_ != nullptr;
  for (auto& e : entries) {
    for (const auto& tmpl : e.templates) {
      double g = Chain(model_->generic, keys, tmpl, P.m_corpus, P.root);
      if (g > e.g) {
        e.g = g;
        e.slotted = HasSlots(tmpl);
      }
      if (agent_known) e.a = std::max(e.a, Chain(*agent_table_, keys, tmpl, P.m_corpus, P.root));
      if (options_.learn_session) e.s = std::max(e.s, Chain(session_, keys, tmpl, P.m_session, P.session_root));
    }
    if (e.templates.empty()) {
      // Only a runbook proposed it: estimate its literal text too.
      e.g = Chain(model_->generic, keys, e.command, P.m_corpus, P.root);
      if (agent_known) e.a = Chain(*agent_table_, keys, e.command, P.m_corpus, P.root);
      if (options_.learn_session) e.s = Chain(session_, keys, e.command, P.m_session, P.session_root);
    }
  }
  // Keep the most promising by a cheap pre-score, then score.
  auto pre = [&](const Entry& e) { return std::max({e.g, e.a, e.s, e.r}); };
  std::stable_sort(entries.begin(), entries.end(), [&](const Entry& x, const Entry& y) { return pre(x) > pre(y); });
  if (entries.size() > options_.max_candidates) entries.resize(options_.max_candidates);
  const Scorer& scorer = agent_known ? model_->known : model_->unknown;
  double log_step = std::log1p(static_cast<double>(state_.size())) / 4;
  for (auto& e : entries) {
    ScoredCandidate c;
    c.command = e.command;
    auto& x = c.x;
    x[0] = 1;
    x[1] = Logit(e.g);
    x[2] = agent_known ? Logit(e.a) : 0;
    x[3] = options_.learn_session ? Logit(e.s) : Logit(P.session_root);
    x[4] = runbook_runs > 0 ? Logit(e.r > 0 ? e.r : 0.02 / (runbook_runs + 0.5)) : 0;
    x[5] = runbook_runs > 0 ? 1 : 0;
    x[6] = e.slotted ? 1 : 0;
    x[7] = log_step;
    x[8] = static_cast<double>(std::min<size_t>(e.templates.size(), 4)) / 4;
    x[9] = std::find(commands_.begin(), commands_.end(), e.command) != commands_.end() ? 1 : 0;
    x[10] = !commands_.empty() && commands_.back() == e.command ? 1 : 0;
    // The source: the estimate that counts most.
    double best = e.g;
    c.source = "corpus";
    if (agent_known && e.a >= best) {
      best = e.a;
      c.source = "agent";
    }
    if (e.s > best && e.s > 2 * P.session_root) {
      best = e.s;
      c.source = "session";
    }
    if (e.r > 0 && e.r >= best) c.source = "runbook";
    if (e.slotted && c.source != "runbook") c.source += "-template";
    if (apply_scorer) {
      c.raw = scorer.fitted ? scorer.Raw(x) : pre(e);
      c.p = scorer.fitted ? scorer.Calibrate(c.raw) : c.raw;
    }
    out.push_back(std::move(c));
  }
  if (apply_scorer) {
    std::stable_sort(out.begin(), out.end(), [](const ScoredCandidate& a, const ScoredCandidate& b) { return a.p > b.p; });
  }
  return out;
}

std::vector<Candidate> BuiltinSpeculator::Next(int k) {
  std::vector<Candidate> out;
  if (k <= 0) return out;
  auto scored = Score(true);
  // Ties in p (isotonic plateaus) keep the logistic order.
  std::stable_sort(scored.begin(), scored.end(), [](const ScoredCandidate& a, const ScoredCandidate& b) {
    return a.p != b.p ? a.p > b.p : a.raw > b.raw;
  });
  for (const auto& c : scored) {
    if (static_cast<int>(out.size()) >= k) break;
    out.push_back({c.command, c.p, "builtin:" + c.source});
  }
  out = NormalizeCandidates(std::move(out), k);
  pending_ = out;
  pending_at_ = state_.size();
  if (options_.online_calibration) {
    for (auto& c : out) c.confidence = online_.Adjust(c.confidence);
  }
  return out;
}

Result<std::vector<Candidate>> BuiltinSpeculator::Propose(const History& history, int k) {
  if (!model_) return Error(Code::kFailedPrecondition, "builtin speculator: no model");
  size_t have = state_.size();
  bool extends = history.agent == agent_ && history.task == task_ && history.task_id == task_id_ &&
                 have <= history.steps.size() && have == commands_.size() &&
                 (have == 0 || TrimCommand(history.steps[have - 1].command) == commands_.back());
  if (!begun_ || !extends) {
    Begin(history.agent, history.task, history.task_id);
    have = 0;
  }
  for (size_t i = have; i < history.steps.size(); ++i) Observe(history.steps[i]);
  return Next(k);
}

}  // namespace specula::speculators
