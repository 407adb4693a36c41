#include "agents/bench.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "agents/builtin_speculators.h"
#include "agents/daemon_environment.h"
#include "agents/local_environment.h"
#include "agents/replay_actor.h"
#include "speculators/builtin.h"

namespace specula::agents {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct Config {
  enum class Kind { kOff, kBuiltin, kOracle, kNgram } kind = Kind::kOff;
  int k = 0;
  double p = 0;
  bool launch_all = false;  // bypass the launch rule
  std::string Label() const {
    char buf[64];
    switch (kind) {
      case Kind::kOff: return "off";
      case Kind::kBuiltin:
        std::snprintf(buf, sizeof buf, "builtin k=%d%s", k, launch_all ? " launch-all" : "");
        return buf;
      case Kind::kNgram:
        std::snprintf(buf, sizeof buf, "ngram k=%d%s", k, launch_all ? " launch-all" : "");
        return buf;
      case Kind::kOracle:
        std::snprintf(buf, sizeof buf, "oracle p=%.2f k=%d (synthetic)", p, k);
        return buf;
    }
    return "?";
  }
};

struct RunOutcome {
  Config config;
  bool ok = false;
  std::string error;
  RunReport report;
  std::string digest;
  bool lossless = false;
  std::string lossless_detail;
};

// Totals of one configuration over several trajectories.
struct Totals {
  double ms = 0, off_ms = 0, wasted_branch_ms = 0, wasted_call_ms = 0;
  size_t hits = 0, steps = 0, branches = 0, prelaunched = 0, kept = 0, runs = 0, lossless = 0;
  void Add(const RunOutcome& r, double off) {
    ++runs;
    if (!r.ok) return;
    ms += r.report.total_ms;
    off_ms += off;
    hits += r.report.Hits();
    for (const auto& s : r.report.steps) steps += s.done_step ? 0 : 1;
    branches += r.report.Branches();
    prelaunched += r.report.Prelaunched();
    kept += r.report.Kept();
    wasted_branch_ms += r.report.WastedBranchMs();
    wasted_call_ms += r.report.WastedCallMs();
    lossless += r.lossless ? 1 : 0;
  }
  double SavingPct() const { return off_ms > 0 ? 100.0 * (off_ms - ms) / off_ms : 0; }
};

std::vector<const StepRecord*> Committed(const RunReport& r) {
  std::vector<const StepRecord*> out;
  for (const auto& s : r.steps) {
    if (!s.done_step) out.push_back(&s);
  }
  return out;
}

// Losslessness: the same committed commands with the same observable
// outcomes, and the same final state, as the speculation-off run.
void CheckLossless(RunOutcome& on, const RunOutcome& off) {
  on.lossless = false;
  if (!on.ok || !off.ok) {
    on.lossless_detail = "run failed";
    return;
  }
  auto a = Committed(off.report), b = Committed(on.report);
  if (a.size() != b.size()) {
    on.lossless_detail = "step count differs";
    return;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i]->command != b[i]->command || !a[i]->outcome.SameObservable(b[i]->outcome)) {
      on.lossless_detail = "step " + std::to_string(i) + " output differs";
      return;
    }
    if (b[i]->mismatch) {
      on.lossless_detail = "step " + std::to_string(i) + " promoted result differed from its peek";
      return;
    }
  }
  if (on.digest != off.digest) {
    on.lossless_detail = "final state differs";
    return;
  }
  on.lossless = true;
}

RunOutcome RunOne(const Trajectory& t, const Config& c, const BenchOptions& o,
                  NgramSpeculator& ngram, const std::shared_ptr<const speculators::Model>& model) {
  RunOutcome r;
  r.config = c;
  std::string workdir = o.work_root + "/" + t.name;
  std::error_code ec;
  fs::remove_all(workdir, ec);
  fs::remove_all(workdir + ".branches", ec);  // left by an interrupted run of the test environment
  fs::create_directories(workdir, ec);
  if (ec) {
    r.error = "mkdir " + workdir + ": " + ec.message();
    return r;
  }
  auto env = o.make_environment(t, workdir, c.kind != Config::Kind::kOff);
  if (!env.ok()) {
    r.error = env.error().ToString();
    return r;
  }
  ReplayTiming timing;
  timing.scale = o.time_scale;
  ReplayActor actor(t, timing);
  std::unique_ptr<OracleSpeculator> oracle;
  Speculator* spec = nullptr;
  std::unique_ptr<speculators::BuiltinSpeculator> builtin;
  if (c.kind == Config::Kind::kNgram) spec = &ngram;
  if (c.kind == Config::Kind::kBuiltin) {
    builtin = std::make_unique<speculators::BuiltinSpeculator>(model);
    spec = builtin.get();
  }
  if (c.kind == Config::Kind::kOracle) {
    OracleOptions oo;
    oo.accuracy = c.p;
    oo.reported_confidence = c.p > 0 ? c.p : o.all_miss_claimed_confidence;
    oo.seed = o.seed;
    oracle = std::make_unique<OracleSpeculator>(t, oo);
    spec = oracle.get();
  }
  EngineOptions eo = o.engine;
  eo.max_branches = c.k;
  eo.agent = o.agent;
  eo.task_id = t.name;
  double think = 0;
  for (const auto& s : t.steps) think += s.think_ms;
  // D's prior: half a think time (a kept pre-launch starts the next call
  // about that much earlier); the engine replaces it with measurements.
  eo.priors.saving_ms = 0.5 * think / static_cast<double>(t.steps.size()) * o.time_scale;
  // c's prior: a few milliseconds (what discarding a branch adds to a
  // commit); the engine replaces it with the measured marginal cost.
  eo.priors.branch_cost_ms = 5;
  // The all-miss oracle bounds the overhead: it launches all k branches at
  // every window instead of letting the launch rule hold back.
  if (c.kind == Config::Kind::kOracle && c.p == 0) eo.use_launch_rule = false;
  if (c.launch_all) eo.use_launch_rule = false;
  Engine engine(**env, actor, spec, eo);
  auto report = engine.Run(t.task);
  if (report.ok()) {
    r.report = std::move(*report);
    auto digest = (*env)->Commit(StateDigestCommand(), std::chrono::milliseconds(60000));
    if (digest.ok()) {
      r.digest = digest->outcome.stdout_text;
      r.ok = true;
    } else {
      r.error = "state digest: " + digest.error().ToString();
    }
  } else {
    r.error = report.error().ToString();
  }
  env->reset();
  fs::remove_all(workdir, ec);
  return r;
}

Json RunJson(const RunOutcome& r, double off_ms, bool include_steps) {
  Json j = {{"config", r.config.Label()}, {"ok", r.ok}};
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  size_t steps = Committed(r.report).size();
  j.update({{"synthetic", r.report.synthetic},
            {"total_ms", r.report.total_ms},
            {"saving_pct", off_ms > 0 ? 100.0 * (off_ms - r.report.total_ms) / off_ms : 0.0},
            {"steps", steps},
            {"hits", r.report.Hits()},
            {"hit_rate", steps ? static_cast<double>(r.report.Hits()) / static_cast<double>(steps) : 0.0},
            {"branches", r.report.Branches()},
            {"prelaunched_calls", r.report.Prelaunched()},
            {"prelaunch_kept", r.report.Kept()},
            {"wasted_branch_s", r.report.WastedBranchMs() / 1000},
            {"wasted_call_s", r.report.WastedCallMs() / 1000},
            {"lossless", r.config.kind == Config::Kind::kOff ? Json(nullptr) : Json(r.lossless)},
            {"lossless_detail", r.lossless_detail}});
  if (include_steps) j["report"] = r.report.ToJson();
  return j;
}

std::string Row(const std::string& name, const std::string& label, double ms, double saving,
                size_t hits, size_t steps, size_t branches, size_t kept, double wasted_s,
                const std::string& lossless) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-26s %-32s %9.3f %8.1f %5zu/%-5zu %8zu %6zu %9.3f  %s\n",
                name.c_str(), label.c_str(), ms / 1000, saving, hits, steps, branches, kept,
                wasted_s, lossless.c_str());
  return buf;
}

}  // namespace

std::string StateDigestCommand() {
  return "cd \"$W\" && { find . -printf '%y %m %U:%G %P -> %l\\n' | LC_ALL=C sort; "
         "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; } | sha256sum";
}

EnvironmentFactory DaemonEnvironmentFactory(std::string socket_path, std::string policy) {
  return [socket_path, policy](const Trajectory& t, const std::string& workdir,
                               bool) -> Result<std::unique_ptr<Environment>> {
    DaemonEnvironmentOptions o;
    o.socket_path = socket_path;
    o.policy = policy;
    o.name = "bench-" + t.name;
    o.setup_commands = {"export W='" + workdir + "' && mkdir -p \"$W\" && cd \"$W\""};
    SPECULA_ASSIGN_OR_RETURN(auto env, DaemonEnvironment::Create(o));
    return std::unique_ptr<Environment>(std::move(env));
  };
}

EnvironmentFactory LocalTestEnvironmentFactory() {
  return [](const Trajectory&, const std::string& workdir,
            bool speculative) -> Result<std::unique_ptr<Environment>> {
    LocalEnvironmentOptions o;
    o.workdir = workdir;
    if (speculative) return std::unique_ptr<Environment>(new SpeculativeLocalEnvironment(o));
    return std::unique_ptr<Environment>(new LocalSequentialEnvironment(o));
  };
}

int BenchCommand(const BenchOptions& options, std::ostream& out) {
  std::ostream& progress = options.progress ? *options.progress : std::cerr;
  if (!options.make_environment) {
    progress << "bench: no environment factory\n";
    return 2;
  }
  if (!(options.time_scale > 0)) {
    progress << "bench: time scale must be > 0\n";
    return 2;
  }
  auto corpus = LoadCorpus(options.corpus_dir.empty() ? DefaultCorpusDir() : options.corpus_dir);
  if (!corpus.ok()) {
    progress << "bench: " << corpus.error().ToString() << "\n";
    return 2;
  }
  std::vector<const Trajectory*> selected;
  for (const auto& t : *corpus) {
    if (options.only.empty() ||
        std::find(options.only.begin(), options.only.end(), t.name) != options.only.end()) {
      selected.push_back(&t);
    }
  }
  if (selected.empty()) {
    progress << "bench: no trajectory selected\n";
    return 2;
  }
  std::shared_ptr<const speculators::Model> model = options.builtin_model;
  if (options.builtin && !model) {
    auto shipped = speculators::Model::Shipped();
    if (!shipped.ok()) {
      progress << "bench: " << shipped.error().ToString() << "\n";
      return 2;
    }
    model = *shipped;
  }
  std::vector<Config> configs = {Config{}};
  if (options.builtin) {
    for (int k : options.ks) configs.push_back({Config::Kind::kBuiltin, k, 0});
    if (options.builtin_launch_all_k > 0) {
      configs.push_back({Config::Kind::kBuiltin, options.builtin_launch_all_k, 0, true});
    }
  }
  for (int k : options.ngram_ks) configs.push_back({Config::Kind::kNgram, k, 0});
  for (double p : options.oracle_p) {
    for (int k : options.ks) configs.push_back({Config::Kind::kOracle, k, p});
  }

  // The per-trajectory work dirs are made (and removed) below it; a root the
  // bench made is removed once empty, a root that was there is left alone.
  std::error_code root_ec;
  bool root_existed = fs::exists(options.work_root, root_ec);
  int status = 0;
  std::map<std::string, Totals> totals;
  std::vector<std::string> order;
  for (const auto& c : configs) order.push_back(c.Label());
  Json jtraj = Json::array();
  std::string text;
  {
    char head[256];
    std::snprintf(head, sizeof head, "%-26s %-32s %9s %8s %11s %8s %6s %9s  %s\n", "trajectory",
                  "config", "time_s", "saving%", "hits/steps", "branches", "kept", "wasted_s",
                  "lossless");
    text += head;
  }
  for (size_t i = 0; i < selected.size(); ++i) {
    const Trajectory& t = *selected[i];
    NgramSpeculator ngram;
    if (!options.ngram_ks.empty()) ngram = NgramSpeculator::Train(*corpus, t.name);  // leave-one-out
    std::vector<RunOutcome> runs;
    for (const auto& c : configs) {
      progress << "[" << (i + 1) << "/" << selected.size() << "] " << t.name << ": "
               << c.Label() << " ..." << std::flush;
      runs.push_back(RunOne(t, c, options, ngram, model));
      RunOutcome& r = runs.back();
      if (c.kind != Config::Kind::kOff) CheckLossless(r, runs.front());
      if (!r.ok) status = 1;
      if (c.kind != Config::Kind::kOff && !r.lossless) status = 1;
      if (r.ok) {
        progress << " " << r.report.total_ms / 1000 << " s, " << r.report.Hits() << " hits";
        if (c.kind != Config::Kind::kOff) progress << (r.lossless ? ", lossless" : ", NOT LOSSLESS: " + r.lossless_detail);
        progress << "\n";
      } else {
        progress << " FAILED: " << r.error << "\n";
      }
    }
    double off_ms = runs.front().ok ? runs.front().report.total_ms : 0;
    Json jruns = Json::array();
    for (const auto& r : runs) {
      totals[r.config.Label()].Add(r, off_ms);
      jruns.push_back(RunJson(r, off_ms, options.include_steps));
      if (!r.ok) {
        text += Row(t.name, r.config.Label(), 0, 0, 0, 0, 0, 0, 0, "FAILED: " + r.error);
        continue;
      }
      bool off = r.config.kind == Config::Kind::kOff;
      double saving = off_ms > 0 ? 100.0 * (off_ms - r.report.total_ms) / off_ms : 0;
      text += Row(t.name, r.config.Label(), r.report.total_ms, off ? 0 : saving, r.report.Hits(),
                  Committed(r.report).size(), r.report.Branches(), r.report.Kept(),
                  r.report.WastedBranchMs() / 1000,
                  off ? "-" : (r.lossless ? "yes" : "NO: " + r.lossless_detail));
    }
    jtraj.push_back({{"name", t.name}, {"category", t.category}, {"runs", jruns}});
  }
  Json joverall = Json::array();
  text += "\noverall (" + std::to_string(selected.size()) + " trajectories)\n";
  for (const auto& label : order) {
    const Totals& s = totals[label];
    joverall.push_back({{"config", label},
                        {"total_ms", s.ms},
                        {"saving_pct", s.SavingPct()},
                        {"steps", s.steps},
                        {"hits", s.hits},
                        {"hit_rate", s.steps ? static_cast<double>(s.hits) / static_cast<double>(s.steps) : 0.0},
                        {"branches", s.branches},
                        {"prelaunched_calls", s.prelaunched},
                        {"prelaunch_kept", s.kept},
                        {"wasted_branch_s", s.wasted_branch_ms / 1000},
                        {"wasted_call_s", s.wasted_call_ms / 1000},
                        {"lossless_runs", s.lossless},
                        {"runs", s.runs}});
    bool off = label == "off";
    text += Row("all", label, s.ms, off ? 0 : s.SavingPct(), s.hits, s.steps, s.branches, s.kept,
                s.wasted_branch_ms / 1000,
                off ? "-" : std::to_string(s.lossless) + "/" + std::to_string(s.runs));
  }
  // How much of the synthetic oracle's (p = 0.5, same k) saving each real
  // speculator reaches.
  Json shares = Json::array();
  for (const auto& c : configs) {
    if (c.kind != Config::Kind::kBuiltin && c.kind != Config::Kind::kNgram) continue;
    Config oracle{Config::Kind::kOracle, c.k, 0.5};
    auto it = totals.find(oracle.Label());
    if (it == totals.end() || it->second.SavingPct() <= 0) continue;
    double share = totals[c.Label()].SavingPct() / it->second.SavingPct();
    shares.push_back({{"config", c.Label()}, {"oracle", oracle.Label()}, {"share_of_oracle_saving", share}});
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s reaches %.0f%% of the saving of %s\n", c.Label().c_str(), 100 * share,
                  oracle.Label().c_str());
    text += buf;
  }
  if (options.json) {
    Json j = {{"time_scale", options.time_scale},
              {"share_of_oracle", shares},
              {"note", "oracle runs are synthetic (a speculator with a set accuracy); "
                       "wasted_branch_s is the wall time of discarded branches"},
              {"trajectories", jtraj},
              {"overall", joverall}};
    out << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    out << "think times scaled by " << options.time_scale
        << "; oracle rows are SYNTHETIC (p=0.00 launches all k: the overhead bound);"
        << " wasted_s = wall time of discarded branches\n"
        << text;
  }
  if (!root_existed) fs::remove(options.work_root, root_ec);  // only if empty
  return status;
}

}  // namespace specula::agents
