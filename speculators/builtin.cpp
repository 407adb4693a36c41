#include "speculators/builtin.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace specula::speculators {
namespace {

double Logit(double p) {
  p = std::clamp(p, 1e-6, 1 - 1e-6);
  return std::log(p / (1 - p));
}

using Contexts = std::array<const ContextStats*, kLevels>;

Contexts Lookup(const CountTable& table, const ContextKeys& keys) {
  Contexts c{};
  for (size_t l = 0; l < kLevels; ++l) c[l] = table.Find(l, keys[l]);
  return c;
}

// The hierarchical estimate of `tmpl` in `table`: from `prior`, each context
// level present shrinks towards the level before it. With the corpus
// estimate as the prior of the session's table, the session's evidence
// refines what the corpus knows of the context ("adapted").
double Chain(const CountTable& table, const Contexts& ctx, const std::string& tmpl,
             const std::vector<std::string>& names, const std::array<double, kLevels>& m, double prior) {
  double p = prior;
  for (size_t l = 0; l < kLevels; ++l) {
    const ContextStats* c = ctx[l];
    if (!c) continue;
    auto it = c->hits.find(tmpl);
    double h = it == c->hits.end() ? 0 : it->second;
    double a = std::max(table.Avail(l, *c, names), h);
    p = (h + m[l] * p) / (a + m[l]);
  }
  return p;
}

struct Entry {
  std::string command;
  std::vector<std::string> templates;
  double g = 0, a = 0, s = 0, r = 0, r2 = 0, adapted = 0;
  bool slotted = false;
  double gen = 0;  // cheap score from where it was generated (pre-selection)
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

void AgentLearning::AddSession(const std::string& agent, const std::vector<StepEvent>& events) {
  if (events.empty()) return;
  std::lock_guard l(mu_);
  if (steps_ + events.size() > max_steps_) return;
  if (!agents_.contains(agent) && agents_.size() >= kMaxAgents) return;
  Learned& a = agents_[agent];
  for (const auto& e : events) a.counts.Add(e);
  steps_ += events.size();
  a.sessions += 1;
  // A new snapshot after every session (sessions reading the old one keep
  // it); it copies the whole table, which max_steps bounds (tens of ms).
  // Pruned like the shipped model's tables (each context's best templates),
  // without its privacy rules: it never leaves the process.
  CountTable t = a.counts;
  PruneOptions o;
  o.min_hits = 1;
  o.min_context = 1;
  o.min_tasks = 1;
  t.Finalize(o, /*drop=*/true);
  a.snapshot = std::make_shared<const CountTable>(std::move(t));
}

size_t AgentLearning::steps() const {
  std::lock_guard l(mu_);
  return steps_;
}

std::shared_ptr<const CountTable> AgentLearning::Table(const std::string& agent) const {
  std::lock_guard l(mu_);
  auto it = agents_.find(agent);
  return it == agents_.end() ? nullptr : it->second.snapshot;
}

size_t AgentLearning::Sessions(const std::string& agent) const {
  std::lock_guard l(mu_);
  auto it = agents_.find(agent);
  return it == agents_.end() ? 0 : it->second.sessions;
}

BuiltinSpeculator::BuiltinSpeculator(std::shared_ptr<const Model> model, BuiltinOptions options,
                                     std::shared_ptr<const RunbookStore> runbooks,
                                     std::shared_ptr<AgentLearning> learning)
    : model_(std::move(model)), options_(options), store_(std::move(runbooks)), learning_(std::move(learning)) {}

BuiltinSpeculator::~BuiltinSpeculator() {
  if (begun_) Learn();
}

Result<std::unique_ptr<BuiltinSpeculator>> BuiltinSpeculator::WithShippedModel(BuiltinOptions options) {
  SPECULA_ASSIGN_OR_RETURN(auto model, Model::Shipped());
  return std::make_unique<BuiltinSpeculator>(std::move(model), options);
}

void BuiltinSpeculator::Begin(const std::string& agent, const std::string& task, const std::string& task_id) {
  // Another session through the same object: the last one is over. The
  // same session again (a rollback cut its history, a window with a gap):
  // its kept steps are observed again below, so the old events go.
  bool same = begun_ && agent == agent_ && task == task_ && task_id == task_id_;
  if (begun_ && !same) Learn();
  events_.clear();
  begun_ = true;
  agent_ = agent;
  task_ = task;
  task_id_ = task_id;
  History h;
  h.task = task;
  h.task_id = task_id;
  task_key_ = TaskKey(h);
  agent_table_ = model_ ? model_->Agent(agent) : nullptr;
  // Only agents the model does not know read a learned table, so only
  // their steps are kept for it (the others would spend its bound).
  learns_ = learning_ && !agent_table_;
  learned_.reset();
  if (!agent_table_ && learning_) {
    learned_ = learning_->Table(agent);
    agent_table_ = learned_.get();
  }
  state_ = SessionState(task);
  session_ = CountTable();
  commands_.clear();
  online_.Reset();
  pending_.clear();
  pending_at_ = static_cast<size_t>(-1);
  runbooks_.clear();
  if (options_.use_runbooks && store_ && !task_key_.empty()) runbooks_ = store_->Get(task_key_);
}

void BuiltinSpeculator::Learn() {
  if (learns_) learning_->AddSession(agent_, events_);
}

void BuiltinSpeculator::SetRunbooks(std::vector<std::vector<std::string>> runs) { runbooks_ = std::move(runs); }

void BuiltinSpeculator::Observe(const Step& step) {
  std::string truth = TrimCommand(step.command);
  if (pending_at_ == state_.size()) online_.Record(pending_, truth);
  pending_.clear();
  pending_at_ = static_cast<size_t>(-1);
  CommandInfo info = AnalyzeCommand(step.command);
  StepEvent event = MakeEvent(state_, info);
  if (options_.learn_session) session_.Add(event);
  // A session longer than the whole bound would never be learned.
  if (learns_ && events_.size() < learning_->max_steps()) events_.push_back(std::move(event));
  state_.Push(step, std::move(info));
  commands_.push_back(std::move(truth));
}

std::vector<ScoredCandidate> BuiltinSpeculator::Score(bool apply_scorer) const {
  std::vector<ScoredCandidate> out;
  if (!model_) return out;
  const ModelParams& P = model_->params;
  const ContextKeys& keys = state_.keys();
  const Slots& slots = state_.slots();
  std::vector<Entry> entries;
  entries.reserve(options_.max_candidates * 2 + 16);
  std::unordered_map<std::string, size_t> index;
  std::unordered_set<std::string> seen_templates;
  auto entry_for = [&](const std::string& command) -> Entry& {
    auto [it, fresh] = index.emplace(command, entries.size());
    if (fresh) entries.push_back({command, {}, 0, 0, 0, 0, 0, 0, false, 0});
    return entries[it->second];
  };
  // `gen`: the template's smoothed rate in the context it came from.
  auto add_template = [&](const std::string& tmpl, double gen) {
    if (entries.size() >= options_.max_candidates * 4) return;
    if (!seen_templates.insert(tmpl).second) {
      return;
    }
    auto cmd = Instantiate(tmpl, slots);
    if (!cmd) return;
    Entry& e = entry_for(*cmd);
    e.templates.push_back(tmpl);
    e.gen = std::max(e.gen, gen);
  };
  auto rate = [](double h, double n) { return (h + 0.5) / (n + 2); };
  // Candidates: the best templates of every context level, from the agent's
  // table, the pooled table and the session's own table.
  for (const CountTable* t : {agent_table_, &model_->generic}) {
    if (!t) continue;
    for (size_t l = kLevels; l-- > 0;) {
      const ContextStats* c = t->Find(l, keys[l]);
      if (!c) continue;
      size_t n = std::min(c->top.size(), P.candidates_per_level[l]);
      for (size_t i = 0; i < n; ++i) add_template(c->top[i].first, rate(c->top[i].second, c->n));
    }
  }
  if (options_.learn_session) {
    for (size_t l = kLevels; l-- > 1;) {
      const ContextStats* c = session_.Find(l, keys[l]);
      if (!c) continue;
      for (const auto& [tmpl, h] : c->hits) {
        if (h > 0) add_template(tmpl, rate(h, c->n));
      }
    }
    // The session's most used templates overall.
    if (const ContextStats* c = session_.Find(0, keys[0])) {
      std::vector<std::pair<double, const std::string*>> best;
      for (const auto& [tmpl, h] : c->hits) best.push_back({h, &tmpl});
      size_t n = std::min(best.size(), P.candidates_per_level[0]);
      std::partial_sort(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(n), best.end(),
                        [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : *a.second < *b.second; });
      for (size_t i = 0; i < n; ++i) add_template(*best[i].second, rate(best[i].first, c->n));
    }
  }
  // The session's own recent commands (re-running a test, re-viewing a
  // file): literal templates of the last distinct ones.
  if (options_.learn_session) {
    size_t n = 0;
    for (size_t i = commands_.size(); i-- > 0 && n < 16;) {
      const std::string& c = commands_[i];
      if (c.size() > kMaxTemplateBytes || c.find('\n') != std::string::npos) continue;
      if (seen_templates.count(c)) continue;
      add_template(c, 0.5 / static_cast<double>(commands_.size() - i + 2));
      ++n;
    }
  }
  // Runbooks: what earlier runs of this task did. Each run is aligned with
  // the session at the most recent of our last commands that it also ran
  // (nearest our position); its next commands vote (r: the very next one),
  // and so do, more weakly, the commands around that point that the session
  // has not run yet (r2: the run's plan ahead).
  double runbook_runs = 0;
  if (!runbooks_.empty()) {
    size_t t = state_.size();
    std::vector<std::pair<std::string, std::pair<double, double>>> votes;
    auto vote = [&](const std::string& cmd, double next, double ahead) {
      auto it = std::find_if(votes.begin(), votes.end(), [&](const auto& v) { return v.first == cmd; });
      if (it == votes.end()) votes.push_back({cmd, {next, ahead}});
      else {
        it->second.first += next;
        it->second.second += ahead;
      }
    };
    for (const auto& run : runbooks_) {
      if (run.empty()) continue;
      runbook_runs += 1;
      // Alignment: j = the run's index of our command `back` steps ago.
      size_t anchor = run.size(), back = 0;
      for (size_t k = 0; k < 4 && k < commands_.size() && anchor == run.size(); ++k) {
        const std::string& c = commands_[commands_.size() - 1 - k];
        size_t best_d = static_cast<size_t>(-1);
        for (size_t i = 0; i < run.size(); ++i) {
          if (run[i] != c) continue;
          size_t d = i > t ? i - t : t - i;
          if (d < best_d) {
            best_d = d;
            anchor = i;
            back = k;
          }
        }
      }
      size_t next;  // the run's index of our next command, if aligned
      bool aligned = anchor < run.size();
      if (commands_.empty()) {
        next = 0;
        aligned = true;
      } else {
        next = aligned ? anchor + 1 + back : std::min(t, run.size() - 1);
      }
      if (aligned && next < run.size()) vote(run[next], back == 0 ? 1.0 : 0.5, 0);
      for (size_t i = next > 3 ? next - 3 : 0; i < run.size() && i <= next + 6; ++i) {
        if (aligned && i == next) continue;
        if (std::find(commands_.begin(), commands_.end(), run[i]) != commands_.end()) continue;
        double d = i > next ? static_cast<double>(i - next) : 2.0 * static_cast<double>(next - i);
        vote(run[i], 0, 1.0 / (1.0 + d));
      }
    }
    for (const auto& [cmd, v] : votes) {
      Entry& e = entry_for(cmd);
      e.r = std::max(e.r, (v.first + 0.05) / (runbook_runs + 0.5));
      e.r2 = std::max(e.r2, (v.second + 0.05) / (runbook_runs + 0.5));
      e.gen = std::max({e.gen, e.r, 0.5 * e.r2});
    }
  }
  // Only the most promising are estimated in full.
  if (entries.size() > options_.max_candidates) {
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) { return x.gen > y.gen; });
    entries.resize(options_.max_candidates);
  }
  // Estimates per template, best per command.
  bool agent_known = agent_table_ != nullptr;
  const Contexts gctx = Lookup(model_->generic, keys);
  const Contexts actx = agent_known ? Lookup(*agent_table_, keys) : Contexts{};
  const Contexts sctx = Lookup(session_, keys);
  for (auto& e : entries) {
    for (const auto& tmpl : e.templates) {
      std::vector<std::string> names = TemplateSlotNames(tmpl);
      double g = Chain(model_->generic, gctx, tmpl, names, P.m_corpus, P.root);
      if (g > e.g) {
        e.g = g;
        e.slotted = HasSlots(tmpl);
      }
      double a = agent_known ? Chain(*agent_table_, actx, tmpl, names, P.m_corpus, P.root) : 0;
      e.a = std::max(e.a, a);
      if (options_.learn_session) {
        e.s = std::max(e.s, Chain(session_, sctx, tmpl, names, P.m_session, P.session_root));
        e.adapted = std::max(e.adapted, Chain(session_, sctx, tmpl, names, P.m_session, agent_known ? std::max(a, g) : g));
      }
    }
    if (e.templates.empty()) {
      // Only a runbook proposed it: estimate its literal text too.
      static const std::vector<std::string> kNone;
      e.g = Chain(model_->generic, gctx, e.command, kNone, P.m_corpus, P.root);
      if (agent_known) e.a = Chain(*agent_table_, actx, e.command, kNone, P.m_corpus, P.root);
      if (options_.learn_session) {
        e.s = Chain(session_, sctx, e.command, kNone, P.m_session, P.session_root);
        e.adapted = Chain(session_, sctx, e.command, kNone, P.m_session, agent_known ? std::max(e.a, e.g) : e.g);
      }
    }
  }
  auto pre = [&](const Entry& e) { return std::max({e.g, e.a, e.s, e.r}); };
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
    x[11] = Logit(options_.learn_session ? e.adapted : (agent_known ? std::max(e.a, e.g) : e.g));
    x[12] = std::min(x[3], agent_known ? std::max(x[1], x[2]) : x[1]);
    x[13] = runbook_runs > 0 ? Logit(e.r2 > 0 ? e.r2 : 0.02 / (runbook_runs + 0.5)) : 0;
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
    if ((e.r > 0 && e.r >= best) || (e.r2 > 0 && e.r2 >= best && e.r2 > e.r)) c.source = "runbook";
    if (e.slotted && c.source != "runbook") c.source += "-template";
    if (apply_scorer) c.raw = scorer.fitted ? scorer.Raw(x) : pre(e);
    out.push_back(std::move(c));
  }
  if (apply_scorer) {
    // Ranked by the logistic score; the first is calibrated on its own
    // (and no other may claim more).
    std::stable_sort(out.begin(), out.end(), [](const ScoredCandidate& a, const ScoredCandidate& b) { return a.raw > b.raw; });
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].p = scorer.fitted ? scorer.Calibrate(out[i].raw, i == 0) : out[i].raw;
      if (i > 0) out[i].p = std::min(out[i].p, out[0].p);
    }
  }
  return out;
}

std::vector<Candidate> BuiltinSpeculator::Next(int k) {
  std::vector<Candidate> out;
  if (k <= 0) return out;
  auto scored = Score(true);  // in logistic order
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
  // `have` counts the session's steps observed so far; the history may
  // hold only its newest ones (History::first). It extends what was seen
  // when it covers the next unseen step and agrees on the last seen one
  // (when still kept).
  size_t have = base_ + state_.size();
  const size_t first = history.first;
  bool extends = history.agent == agent_ && history.task == task_ && history.task_id == task_id_ &&
                 have >= first && have <= history.end() && state_.size() == commands_.size() &&
                 (have == first ||
                  (!commands_.empty() && TrimCommand(history.steps[have - 1 - first].command) == commands_.back()));
  if (!begun_ || !extends) {
    Begin(history.agent, history.task, history.task_id);
    base_ = first;  // a window with a gap behind it: the session starts at its first kept step
    have = first;
  }
  for (size_t i = have - first; i < history.steps.size(); ++i) Observe(history.steps[i]);
  return Next(k);
}

}  // namespace specula::speculators
