#include "speculators/trainer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <ostream>
#include <set>

#include "speculators/builtin.h"
#include "speculators/calibration.h"

namespace specula::speculators {
namespace {

struct Prepared {
  const History* h = nullptr;
  std::string task;  // TaskKey
  std::vector<StepEvent> events;
};

std::vector<StepEvent> Events(const History& h, const std::string& task) {
  std::vector<StepEvent> out;
  out.reserve(h.steps.size());
  SessionState st(h.task);
  for (const auto& s : h.steps) {
    CommandInfo info = AnalyzeCommand(s.command);
    out.push_back(MakeEvent(st, info));
    out.back().task = task;
    st.Push(s, std::move(info));
  }
  return out;
}

Model CountsOf(const std::vector<const Prepared*>& train, const ModelParams& params) {
  std::vector<const Prepared*> sorted = train;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Prepared* a, const Prepared* b) { return a->task < b->task; });
  Model m;
  m.params = params;
  for (const auto* p : sorted) {
    CountTable& agent = m.agents[p->h->agent];
    for (const auto& e : p->events) {
      m.generic.Add(e);
      agent.Add(e);
    }
  }
  m.generic.Finalize(params.prune, true);
  for (auto& [name, t] : m.agents) t.Finalize(params.prune, true);
  return m;
}

struct Examples {
  std::vector<std::array<double, kFeatures>> x;
  std::vector<double> y;
  std::vector<size_t> step;  // which predicted step (for the top-k selection)
  size_t steps = 0, covered = 0;
};

// Predicts every step of `h` with `model` and appends the candidates.
void Predict(const std::shared_ptr<const Model>& model, const History& h, bool agent_known,
             const std::vector<std::vector<std::string>>* runbooks, Examples& ex) {
  BuiltinOptions o;
  o.online_calibration = false;
  BuiltinSpeculator spec(model, o);
  spec.Begin(agent_known ? h.agent : "", h.task, h.task_id);
  if (runbooks) spec.SetRunbooks(*runbooks);
  for (const auto& s : h.steps) {
    std::string truth = TrimCommand(s.command);
    auto cands = spec.Score(false);
    bool any = false;
    for (const auto& c : cands) {
      bool hit = c.command == truth;
      any = any || hit;
      ex.x.push_back(c.x);
      ex.y.push_back(hit ? 1 : 0);
      ex.step.push_back(ex.steps);
    }
    ++ex.steps;
    ex.covered += any ? 1 : 0;
    spec.Observe(s);
  }
}

void Solve(std::array<std::array<double, kFeatures>, kFeatures> a, std::array<double, kFeatures>& b) {
  // Gaussian elimination with partial pivoting; b becomes the solution.
  for (size_t c = 0; c < kFeatures; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < kFeatures; ++r) {
      if (std::fabs(a[r][c]) > std::fabs(a[piv][c])) piv = r;
    }
    std::swap(a[c], a[piv]);
    std::swap(b[c], b[piv]);
    if (std::fabs(a[c][c]) < 1e-12) {
      b[c] = 0;
      continue;
    }
    for (size_t r = 0; r < kFeatures; ++r) {
      if (r == c) continue;
      double f = a[r][c] / a[c][c];
      if (f == 0) continue;
      for (size_t k = c; k < kFeatures; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  for (size_t c = 0; c < kFeatures; ++c) b[c] = std::fabs(a[c][c]) < 1e-12 ? 0 : b[c] / a[c][c];
}

Scorer FitScorer(const Examples& ex, double l2, const char* what, std::ostream* log) {
  Scorer s;
  if (ex.x.empty()) return s;
  s.weights = FitLogistic(ex.x, ex.y, l2);
  s.fitted = true;
  // Calibrate what is proposed: each step's best 8 by the logistic score.
  std::map<size_t, std::vector<std::pair<double, double>>> by_step;
  for (size_t i = 0; i < ex.x.size(); ++i) by_step[ex.step[i]].push_back({s.Raw(ex.x[i]), ex.y[i]});
  std::vector<std::pair<double, double>> xy, xy1;
  for (auto& [st, v] : by_step) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < v.size() && i < 8; ++i) (i == 0 ? xy1 : xy).push_back(v[i]);
  }
  FitIsotonic(std::move(xy), 24, 2.0, s.iso_x, s.iso_y);
  FitIsotonic(std::move(xy1), 16, 2.0, s.iso1_x, s.iso1_y);
  if (log) {
    *log << "train: " << what << " scorer: " << ex.x.size() << " candidates over " << ex.steps << " steps, "
         << "truth among candidates in " << ex.covered << " (" << (ex.steps ? 100.0 * static_cast<double>(ex.covered) / static_cast<double>(ex.steps) : 0.0)
         << "%)\n  weights:";
    for (size_t i = 0; i < kFeatures; ++i) *log << " " << kFeatureNames[i] << "=" << s.weights[i];
    *log << "\n";
  }
  return s;
}

bool Keep(uint64_t h, size_t have, size_t want_steps, size_t total_steps) {
  if (total_steps <= want_steps) return true;
  (void)have;
  double frac = static_cast<double>(want_steps) / static_cast<double>(total_steps);
  return static_cast<double>(h % 10000) < frac * 10000;
}

}  // namespace

std::array<double, kFeatures> FitLogistic(const std::vector<std::array<double, kFeatures>>& x,
                                          const std::vector<double>& y, double l2, int iterations) {
  std::array<double, kFeatures> w{};
  if (x.empty()) return w;
  double n = static_cast<double>(x.size());
  // Start at the base rate.
  double rate = 0;
  for (double v : y) rate += v;
  rate = std::clamp(rate / n, 1e-6, 1 - 1e-6);
  w[0] = std::log(rate / (1 - rate));
  auto loss_of = [&](const std::array<double, kFeatures>& w_) {
    double loss = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      double z = 0;
      for (size_t f = 0; f < kFeatures; ++f) z += w_[f] * x[i][f];
      // log(1 + e^z) - y z, computed stably
      double l = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
      loss += l - y[i] * z;
    }
    for (size_t f = 1; f < kFeatures; ++f) loss += 0.5 * l2 * n * w_[f] * w_[f];
    return loss;
  };
  double loss = loss_of(w);
  for (int it = 0; it < iterations; ++it) {
    std::array<double, kFeatures> g{};
    std::array<std::array<double, kFeatures>, kFeatures> H{};
    for (size_t i = 0; i < x.size(); ++i) {
      double z = 0;
      for (size_t f = 0; f < kFeatures; ++f) z += w[f] * x[i][f];
      double p = 1 / (1 + std::exp(-std::clamp(z, -35.0, 35.0)));
      double d = p - y[i], v = std::max(p * (1 - p), 1e-12);
      for (size_t f = 0; f < kFeatures; ++f) {
        if (x[i][f] == 0) continue;
        g[f] += d * x[i][f];
        for (size_t k = f; k < kFeatures; ++k) H[f][k] += v * x[i][f] * x[i][k];
      }
    }
    for (size_t f = 0; f < kFeatures; ++f) {
      for (size_t k = 0; k < f; ++k) H[f][k] = H[k][f];
      if (f > 0) {  // no penalty on the bias
        g[f] += l2 * n * w[f];
        H[f][f] += l2 * n;
      }
      H[f][f] += 1e-6 * n;
    }
    std::array<double, kFeatures> step = g;
    Solve(H, step);
    // Damped: halve the step until the loss does not increase.
    double t = 1;
    std::array<double, kFeatures> next{};
    double next_loss = loss;
    bool improved = false;
    for (int h = 0; h < 30; ++h, t *= 0.5) {
      for (size_t f = 0; f < kFeatures; ++f) next[f] = w[f] - t * step[f];
      next_loss = loss_of(next);
      if (next_loss <= loss) {
        improved = true;
        break;
      }
    }
    if (!improved) break;
    w = next;
    bool converged = loss - next_loss < 1e-9 * n;
    loss = next_loss;
    if (converged) break;
  }
  return w;
}

Model BuildCounts(const std::vector<const History*>& sessions, const ModelParams& params) {
  std::vector<Prepared> prep(sessions.size());
  std::vector<const Prepared*> ptrs;
  for (size_t i = 0; i < sessions.size(); ++i) {
    prep[i].h = sessions[i];
    prep[i].task = TaskKey(*sessions[i]);
    prep[i].events = Events(*sessions[i], prep[i].task);
    ptrs.push_back(&prep[i]);
  }
  return CountsOf(ptrs, params);
}

Result<Model> Train(const std::vector<History>& sessions, const TrainOptions& o) {
  if (sessions.empty()) return Error(Code::kInvalidArgument, "train: no sessions");
  if (o.folds < 2) return Error(Code::kInvalidArgument, "train: need at least 2 folds");
  std::vector<Prepared> prep(sessions.size());
  size_t total_steps = 0;
  std::map<std::string, size_t> agent_steps;
  for (size_t i = 0; i < sessions.size(); ++i) {
    prep[i].h = &sessions[i];
    prep[i].task = TaskKey(sessions[i]);
    if (prep[i].task.empty()) prep[i].task = "session:" + std::to_string(i);
    prep[i].events = Events(sessions[i], prep[i].task);
    total_steps += sessions[i].steps.size();
    agent_steps[sessions[i].agent] += sessions[i].steps.size();
  }
  std::vector<const Prepared*> all;
  for (const auto& p : prep) all.push_back(&p);
  Model model = CountsOf(all, o.params);
  if (!o.fit_scorer) return model;

  // Known agent: K folds by task.
  Examples known;
  size_t runbook_sessions = 0;
  for (size_t f = 0; f < o.folds; ++f) {
    std::vector<const Prepared*> train, test;
    for (const auto* p : all) {
      (Fnv1a64(p->task) % o.folds == f ? test : train).push_back(p);
    }
    if (test.empty() || train.empty()) continue;
    auto fold = std::make_shared<const Model>(CountsOf(train, o.params));
    std::map<std::string, std::vector<const Prepared*>> by_task;
    for (const auto* p : test) by_task[p->task].push_back(p);
    for (const auto* p : test) {
      if (Keep(Fnv1a64(p->h->task + p->task + std::to_string(p->events.size())), 0, o.max_known_steps, total_steps)) {
        Predict(fold, *p->h, true, nullptr, known);
      }
      const auto& runs = by_task[p->task];
      if (runs.size() >= 2 && runbook_sessions < o.max_runbook_sessions) {
        std::vector<std::vector<std::string>> rb;
        for (const auto* r : runs) {
          if (r == p) continue;
          std::vector<std::string> cmds;
          for (const auto& s : r->h->steps) cmds.push_back(TrimCommand(s.command));
          rb.push_back(std::move(cmds));
        }
        Predict(fold, *p->h, true, &rb, known);
        ++runbook_sessions;
      }
    }
  }
  model.known = FitScorer(known, o.l2, "known-agent", o.log);

  // Unknown agent: each agent predicted from the others only.
  Examples unknown;
  if (agent_steps.size() >= 2) {
    for (const auto& [agent, steps] : agent_steps) {
      std::vector<const Prepared*> train, test;
      for (const auto* p : all) (p->h->agent == agent ? test : train).push_back(p);
      auto others = std::make_shared<const Model>(CountsOf(train, o.params));
      // The cross-agent model has no section for this agent (by construction).
      for (const auto* p : test) {
        if (Keep(Fnv1a64(p->task + "u" + std::to_string(p->events.size())), 0, o.max_unknown_steps_per_agent, steps)) {
          Predict(others, *p->h, false, nullptr, unknown);
        }
      }
    }
  }
  if (!unknown.x.empty()) {
    model.unknown = FitScorer(unknown, o.l2, "unknown-agent", o.log);
  } else {
    // One agent only: the known-agent examples without the agent's estimate.
    Examples u = known;
    for (auto& x : u.x) x[2] = 0;
    model.unknown = FitScorer(u, o.l2, "unknown-agent (from known, agent feature dropped)", o.log);
  }
  return model;
}

}  // namespace specula::speculators
