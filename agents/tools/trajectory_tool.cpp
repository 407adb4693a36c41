// specula-trajectories: maintenance of the trajectory corpus and a way to run
// the bench before the `specula` CLI wires it.
//   record FILE...   run each trajectory with bash in a fresh temp work dir
//                    and write the outcomes into the file
//   verify FILE...   run each and compare with the recording (twice, in two
//                    different work dirs, to catch path-dependent output)
//   train [--out FILE] [--subset S] [--param KEY=JSON]... SOURCE...
//                    train the built-in speculator's model (docs/speculators.md)
//   eval --train SOURCE... --test SOURCE... [--k 1,3,8] [--json] [--split heldout|dev|replay]
//        [--model FILE | --shipped] [--speculator builtin|ngram] [--misses N] ...
//                    hit@k, per source, read-only share, calibration
//   eval [DIR]       (no options) leave-one-out accuracy of the original n-gram speculator
//   bench [--json [--steps]] [--scale X] [--k K]... [--only NAME]... [--socket PATH [--policy P] | --local-test]
// A SOURCE is [AGENT=]DIR[@SUBSET]: a trajectory directory, the agent id its
// sessions get (default: the directory's name) and a subset of it
// (speculators/dataset.h: all, train, dev, test, train+dev, replay, ...).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agents/bench.h"
#include "agents/builtin_speculators.h"
#include "agents/local_environment.h"
#include "agents/trajectory.h"
#include "common/log.h"
#include "speculators/builtin.h"
#include "speculators/dataset.h"
#include "speculators/evaluate.h"
#include "speculators/trainer.h"

namespace {

using namespace specula;
using namespace specula::agents;

Result<std::vector<std::string>> RunIn(Trajectory& t, const std::string& dir, bool record) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(Code::kInternal, "mkdir " + dir + ": " + ec.message());
  LocalSequentialEnvironment env(LocalEnvironmentOptions{dir, {}, 1 << 20});
  auto r = ReplayAgainst(t, env, record);
  std::filesystem::remove_all(dir, ec);
  return r;
}

int RecordOrVerify(const std::vector<std::string>& files, bool record) {
  int status = 0;
  std::string root = "/tmp/specula-traj-" + std::to_string(::getpid());
  for (const auto& f : files) {
    auto t = LoadTrajectory(f);
    if (!t.ok()) {
      std::cerr << t.error().ToString() << "\n";
      status = 1;
      continue;
    }
    for (const char* variant : record ? std::vector<const char*>{"a"} : std::vector<const char*>{"a", "bb"}) {
      auto r = RunIn(*t, root + "/" + variant + "/" + t->name, record);
      if (!r.ok()) {
        std::cerr << t->name << ": " << r.error().ToString() << "\n";
        status = 1;
        break;
      }
      for (const auto& m : *r) std::cerr << m << "\n";
      if (!r->empty()) status = 1;
    }
    if (record) {
      for (size_t i = 0; i < t->steps.size(); ++i) {
        if (t->steps[i].recorded->exit_code != 0) {
          std::cerr << t->name << " step " << i << " exited " << t->steps[i].recorded->exit_code
                    << ": " << t->steps[i].recorded->stderr_text << "\n";
        }
      }
      auto st = SaveTrajectory(*t, f);
      if (!st.ok()) {
        std::cerr << st.ToString() << "\n";
        status = 1;
      }
    }
    std::cerr << (record ? "recorded " : "verified ") << t->name << "\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return status;
}


namespace sp = specula::speculators;

struct Source {
  std::string agent, dir, subset;  // subset "" = decided by the split
  std::string Label() const { return agent + "@" + (subset.empty() ? "?" : subset); }
};

// [AGENT=]DIR[@SUBSET]
Source ParseSource(const std::string& arg) {
  Source s;
  std::string rest = arg;
  size_t eq = rest.find('=');
  if (eq != std::string::npos && rest.find('/') > eq) {
    s.agent = rest.substr(0, eq);
    rest = rest.substr(eq + 1);
  }
  size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    s.subset = rest.substr(at + 1);
    rest = rest.substr(0, at);
  }
  while (rest.size() > 1 && rest.back() == '/') rest.pop_back();
  s.dir = rest;
  if (s.agent.empty()) s.agent = std::filesystem::path(rest).filename().string();
  return s;
}

struct Loaded {
  std::vector<sp::EvalSession> sessions;
  size_t steps = 0;
};

Result<Loaded> LoadSource(const Source& src) {
  SPECULA_ASSIGN_OR_RETURN(auto corpus, LoadCorpus(src.dir));
  std::vector<std::string> names;
  for (const auto& t : corpus) names.push_back(t.name);
  bool ok = true;
  auto keep = sp::SelectSubset(names, src.subset.empty() ? "all" : src.subset, &ok);
  if (!ok) return Error(Code::kInvalidArgument, "unknown subset '" + src.subset + "'");
  Loaded l;
  for (size_t i = 0; i < corpus.size(); ++i) {
    if (!keep[i]) continue;
    sp::EvalSession es;
    es.history = ToSpeculatorHistory(corpus[i], src.agent, sp::TaskOfName(corpus[i].name));
    es.source = src.Label();
    es.name = corpus[i].name;
    l.steps += es.history.steps.size();
    l.sessions.push_back(std::move(es));
  }
  return l;
}

std::vector<int> ParseKs(const std::string& s) {
  std::vector<int> ks;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t c = s.find(',', pos);
    int k = std::atoi(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos).c_str());
    if (k > 0) ks.push_back(k);
    pos = c == std::string::npos ? s.size() : c + 1;
  }
  return ks;
}

// --param KEY=JSON over the default parameters.
Result<sp::ModelParams> Params(const std::vector<std::string>& overrides) {
  nlohmann::json j = sp::ModelParams{}.ToJson();
  for (const auto& o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos) return Error(Code::kInvalidArgument, "--param needs KEY=JSON: " + o);
    auto v = nlohmann::json::parse(o.substr(eq + 1), nullptr, false);
    if (v.is_discarded()) return Error(Code::kInvalidArgument, "--param " + o + ": value is not JSON");
    nlohmann::json patch = {{o.substr(0, eq), v}};
    j.merge_patch(patch);
  }
  return sp::ModelParams::FromJson(j);
}

std::string CommandLine(const char* cmd, const std::vector<std::string>& args) {
  std::string s = std::string("specula-trajectories ") + cmd;
  for (const auto& a : args) s += " " + a;
  return s;
}

int Train(const std::vector<std::string>& args) {
  std::string out = "speculators/model/builtin.json";
  std::string subset = "train+dev";
  std::vector<std::string> params;
  std::vector<Source> sources;
  sp::TrainOptions to;
  bool quiet = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (a == "--out") out = next();
    else if (a == "--subset") subset = next();
    else if (a == "--param") params.push_back(next());
    else if (a == "--folds") to.folds = static_cast<size_t>(std::atoi(next().c_str()));
    else if (a == "--quiet") quiet = true;
    else if (!a.empty() && a[0] == '-') {
      std::cerr << "train: unknown option " << a << "\n";
      return 2;
    } else {
      sources.push_back(ParseSource(a));
    }
  }
  if (sources.empty()) {
    std::cerr << "usage: specula-trajectories train [--out FILE] [--subset S] [--param KEY=JSON]... "
                 "[AGENT=]DIR[@SUBSET]...\n";
    return 2;
  }
  auto p = Params(params);
  if (!p.ok()) {
    std::cerr << "train: " << p.error().ToString() << "\n";
    return 2;
  }
  to.params = *p;
  if (!quiet) to.log = &std::cerr;
  std::vector<sp::History> sessions;
  nlohmann::json trained_on = nlohmann::json::array();
  for (auto& src : sources) {
    if (src.subset.empty()) src.subset = subset;
    auto l = LoadSource(src);
    if (!l.ok()) {
      std::cerr << "train: " << src.dir << ": " << l.error().ToString() << "\n";
      return 1;
    }
    trained_on.push_back({{"agent", src.agent},
                          {"directory", std::filesystem::path(src.dir).filename().string()},
                          {"subset", src.subset},
                          {"trajectories", l->sessions.size()},
                          {"steps", l->steps}});
    for (auto& es : l->sessions) sessions.push_back(std::move(es.history));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto model = sp::Train(sessions, to);
  if (!model.ok()) {
    std::cerr << "train: " << model.error().ToString() << "\n";
    return 1;
  }
  model->meta = {{"trained_on", trained_on}, {"command", CommandLine("train", args)}};
  auto st = model->Save(out);
  if (!st.ok()) {
    std::cerr << "train: " << st.ToString() << "\n";
    return 1;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(out, ec);
  std::cerr << "train: wrote " << out << " (" << size << " bytes) in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  return 0;
}

int EvalLegacy(const std::vector<std::string>& args);

int Evaluate(const std::vector<std::string>& args) {
  if (args.empty() || args[0].rfind("--", 0) != 0) return EvalLegacy(args);
  std::vector<Source> train, test;
  std::vector<std::string> params;
  sp::EvalOptions eo;
  std::string split = "heldout", model_file, speculator = "builtin";
  bool json = false, shipped = false, agent_unknown = false, learn_runbooks = false, learn_agents = false,
       quiet = false;
  sp::BuiltinOptions bo;
  sp::TrainOptions to;
  std::vector<std::string>* side = nullptr;
  std::vector<std::string> train_args, test_args;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (a == "--train") side = &train_args;
    else if (a == "--test") side = &test_args;
    else if (a == "--k") eo.ks = ParseKs(next());
    else if (a == "--json") json = true;
    else if (a == "--split") split = next();
    else if (a == "--model") model_file = next();
    else if (a == "--shipped") shipped = true;
    else if (a == "--speculator") speculator = next();
    else if (a == "--misses") eo.misses = static_cast<size_t>(std::atoi(next().c_str()));
    else if (a == "--probe") eo.probe_k = std::atoi(next().c_str());
    else if (a == "--param") params.push_back(next());
    else if (a == "--folds") to.folds = static_cast<size_t>(std::atoi(next().c_str()));
    else if (a == "--no-online-calibration") bo.online_calibration = false;
    else if (a == "--no-session") bo.learn_session = false;
    else if (a == "--no-runbooks") bo.use_runbooks = false;
    else if (a == "--agent-unknown") agent_unknown = true;
    else if (a == "--learn-runbooks") learn_runbooks = true;
    else if (a == "--learn-agents") learn_agents = true;
    else if (a == "--quiet") quiet = true;
    else if (!a.empty() && a[0] == '-') {
      std::cerr << "eval: unknown option " << a << "\n";
      return 2;
    } else if (side) {
      side->push_back(a);
    } else {
      std::cerr << "eval: " << a << ": give sources after --train or --test\n";
      return 2;
    }
  }
  for (const auto& a : train_args) train.push_back(ParseSource(a));
  for (const auto& a : test_args) test.push_back(ParseSource(a));
  if (test.empty() || (train.empty() && model_file.empty() && !shipped && speculator == "builtin")) {
    std::cerr << "usage: specula-trajectories eval --train SOURCE... --test SOURCE... [--k 1,3,8] [--json]\n"
                 "       [--split heldout|dev|replay|cv] [--model FILE | --shipped] [--speculator builtin|ngram]\n"
                 "       [--misses N] [--no-online-calibration] [--no-session] [--no-runbooks] [--agent-unknown]\n"
                 "       [--learn-runbooks] [--learn-agents] [--param KEY=JSON]...\n";
    return 2;
  }
  if (eo.ks.empty()) eo.ks = {1, 3, 8};
  // A directory on both sides is split by task (never by step).
  std::vector<std::pair<std::string, std::string>> folds;  // (train subset, test subset)
  if (split == "heldout") folds = {{"train+dev", "test"}};
  else if (split == "dev") folds = {{"train", "dev"}};
  else if (split == "replay") folds = {{"replay-rest", "replay"}};
  else if (split == "cv") {
    for (int f = 0; f < 5; ++f) folds.push_back({"not-fold" + std::to_string(f), "fold" + std::to_string(f)});
  } else {
    std::cerr << "eval: unknown split " << split << "\n";
    return 2;
  }
  const std::vector<Source> train0 = train, test0 = test;
  sp::EvalReport report;
  for (const auto& [train_sub, test_sub] : folds) {
    std::set<std::string> test_dirs, train_dirs;
    for (const auto& s : test) test_dirs.insert(s.dir);
    for (const auto& s : train) train_dirs.insert(s.dir);
    train = train0;
    test = test0;
    for (auto& s : train) {
      if (s.subset.empty()) s.subset = test_dirs.count(s.dir) ? train_sub : "all";
    }
    for (auto& s : test) {
      if (s.subset.empty()) s.subset = train_dirs.count(s.dir) ? test_sub : "all";
    }
    std::vector<sp::EvalSession> train_sessions, test_sessions;
    std::set<std::string> train_names;
    for (const auto& [list, out] : {std::pair{&train, &train_sessions}, std::pair{&test, &test_sessions}}) {
      for (const auto& s : *list) {
        auto l = LoadSource(s);
        if (!l.ok()) {
          std::cerr << "eval: " << s.dir << ": " << l.error().ToString() << "\n";
          return 1;
        }
        if (!quiet) std::cerr << "eval: " << (list == &train ? "train " : "test  ") << s.dir << " as " << s.Label() << ": " << l->sessions.size() << " trajectories, " << l->steps << " steps\n";
        for (auto& es : l->sessions) out->push_back(std::move(es));
      }
    }
    for (const auto& es : train_sessions) train_names.insert(es.source.substr(0, es.source.find('@')) + "/" + es.name);
    for (const auto& es : test_sessions) {
      if (train_names.count(es.source.substr(0, es.source.find('@')) + "/" + es.name)) {
        std::cerr << "eval: " << es.name << " is on both sides\n";
        return 2;
      }
    }
    if (agent_unknown) {
      for (auto& es : test_sessions) es.history.agent = "";
    }
    if (learn_agents) {
      // What is learned across sessions includes earlier runs of the same
      // task: report those sessions apart ("+task-seen"), so the figure of
      // the others is the agent's habits alone.
      std::set<std::string> seen;
      for (auto& es : test_sessions) {
        std::string key = sp::TaskKey(es.history);
        if (!key.empty() && !seen.insert(es.history.agent + "\n" + key).second) es.source += "+task-seen";
      }
    }
    sp::SpeculatorFactory factory;
    std::shared_ptr<const sp::Model> model;
    std::shared_ptr<sp::RunbookStore> runbooks = std::make_shared<sp::RunbookStore>();
    std::vector<Trajectory> ngram_corpus;
    std::unique_ptr<NgramSpeculator> ngram;
    if (speculator == "builtin") {
      if (!model_file.empty() || shipped) {
        auto m = shipped ? sp::Model::Shipped() : [&]() -> Result<std::shared_ptr<const sp::Model>> {
          SPECULA_ASSIGN_OR_RETURN(auto mm, sp::Model::Load(model_file));
          return std::make_shared<const sp::Model>(std::move(mm));
        }();
        if (!m.ok()) {
          std::cerr << "eval: " << m.error().ToString() << "\n";
          return 1;
        }
        model = *m;
      } else {
        auto p = Params(params);
        if (!p.ok()) {
          std::cerr << "eval: " << p.error().ToString() << "\n";
          return 2;
        }
        to.params = *p;
        if (!quiet) to.log = &std::cerr;
        std::vector<sp::History> hs;
        for (const auto& es : train_sessions) hs.push_back(es.history);
        auto t0 = std::chrono::steady_clock::now();
        auto m = sp::Train(hs, to);
        if (!m.ok()) {
          std::cerr << "eval: train: " << m.error().ToString() << "\n";
          return 1;
        }
        if (!quiet) {
          std::cerr << "eval: trained in " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                    << " s, model " << m->ToJson().dump().size() << " bytes\n";
        }
        model = std::make_shared<const sp::Model>(std::move(*m));
      }
      // Earlier runs of the same task, from the training side (they only
      // matter when a task is on both sides: the replay split).
      for (const auto& es : train_sessions) {
        std::vector<std::string> cmds;
        for (const auto& s : es.history.steps) cmds.push_back(TrimCommand(s.command));
        runbooks->Add(sp::TaskKey(es.history), std::move(cmds));
      }
      // --learn-agents: what the daemon does (runtime/speculation): the
      // test sessions, in order, teach the agent tables of agents the model
      // does not know; each session sees only those finished before it.
      auto learning = learn_agents ? std::make_shared<sp::AgentLearning>() : nullptr;
      factory = [&, learning](const sp::EvalSession&) -> std::unique_ptr<Speculator> {
        return std::make_unique<sp::BuiltinSpeculator>(model, bo, runbooks, learning);
      };
      if (learn_runbooks) {
        eo.after_session = [&](const sp::EvalSession& es) {
          std::vector<std::string> cmds;
          for (const auto& s : es.history.steps) cmds.push_back(TrimCommand(s.command));
          runbooks->Add(sp::TaskKey(es.history), std::move(cmds));
        };
      }
    } else if (speculator == "ngram") {
      for (const auto& s : train) {
        auto c = LoadCorpus(s.dir);
        if (!c.ok()) return 1;
        std::vector<std::string> names;
        for (const auto& t : *c) names.push_back(t.name);
        auto keep = sp::SelectSubset(names, s.subset);
        for (size_t i = 0; i < c->size(); ++i) {
          if (keep[i]) ngram_corpus.push_back((*c)[i]);
        }
      }
      ngram = std::make_unique<NgramSpeculator>(NgramSpeculator::Train(ngram_corpus, ""));
      factory = [&](const sp::EvalSession&) -> std::unique_ptr<Speculator> {
        return std::make_unique<NgramSpeculator>(*ngram);
      };
    } else {
      std::cerr << "eval: unknown speculator " << speculator << "\n";
      return 2;
    }
    auto fold = sp::Evaluate(factory, test_sessions, eo);
    if (folds.size() > 1 && !quiet) {
      std::cerr << "eval: fold " << test_sub << ": " << fold.all.steps << " steps, hit@" << eo.ks.back() << " "
                << (fold.all.steps ? static_cast<double>(fold.all.hits[eo.ks.back()]) / static_cast<double>(fold.all.steps) : 0.0) << "\n";
    }
    report.Merge(fold);
  }
  if (json) {
    nlohmann::json j = report.ToJson();
    j["command"] = CommandLine("eval", args);
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << CommandLine("eval", args) << "\n" << report.ToText();
  }
  return 0;
}

// Leave-one-out accuracy and calibration of the original n-gram speculator.
int EvalLegacy(const std::vector<std::string>& args) {
  auto corpus = LoadCorpus(args.empty() ? DefaultCorpusDir() : args[0]);
  if (!corpus.ok()) {
    std::cerr << corpus.error().ToString() << "\n";
    return 1;
  }
  size_t steps = 0, top1 = 0, top3 = 0, proposed = 0;
  double conf_sum = 0;
  for (const auto& t : *corpus) {
    auto model = NgramSpeculator::Train(*corpus, t.name);
    History h;
    h.task = t.task;
    for (const auto& s : t.steps) {
      auto c = model.Propose(h, 3);
      ++steps;
      if (c.ok() && !c->empty()) {
        ++proposed;
        conf_sum += (*c)[0].confidence;
        if ((*c)[0].command == TrimCommand(s.command)) ++top1;
        for (const auto& x : *c) top3 += x.command == TrimCommand(s.command) ? 1 : 0;
      }
      h.turns.push_back({s.command, s.recorded.value_or(ActionOutcome{})});
    }
  }
  std::printf("trajectories %zu, steps %zu, steps with a proposal %zu\n", corpus->size(), steps, proposed);
  std::printf("top-1 accuracy %.3f, top-3 accuracy %.3f (leave-one-out)\n",
              static_cast<double>(top1) / static_cast<double>(steps),
              static_cast<double>(top3) / static_cast<double>(steps));
  std::printf("mean top-1 confidence %.3f vs top-1 hit rate when proposing %.3f\n",
              proposed ? conf_sum / static_cast<double>(proposed) : 0.0,
              proposed ? static_cast<double>(top1) / static_cast<double>(proposed) : 0.0);
  return 0;
}

int Bench(const std::vector<std::string>& args) {
  BenchOptions o;
  std::string socket;
  std::string policy;
  bool local = false;
  bool k_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (a == "--json") o.json = true;
    else if (a == "--steps") o.include_steps = true;
    else if (a == "--scale") o.time_scale = std::atof(next().c_str());
    else if (a == "--only") o.only.push_back(next());
    else if (a == "--k") {
      if (!k_given) o.ks.clear();
      k_given = true;
      o.ks.push_back(std::atoi(next().c_str()));
    }
    else if (a == "--ngram") o.ngram_ks = {3};
    else if (a == "--model") {
      auto m = sp::Model::Load(next());
      if (!m.ok()) {
        std::cerr << "bench: " << m.error().ToString() << "\n";
        return 2;
      }
      o.builtin_model = std::make_shared<const sp::Model>(std::move(*m));
    }
    else if (a == "--socket") socket = next();
    else if (a == "--policy") policy = next();
    else if (a == "--local-test") local = true;
    else if (a == "--corpus") o.corpus_dir = next();
    else if (a == "--no-builtin") o.builtin = false;
    else if (a == "--no-oracle") o.oracle_p.clear();
    else {
      std::cerr << "bench: unknown option " << a << "\n";
      return 2;
    }
  }
  o.make_environment = local ? LocalTestEnvironmentFactory() : DaemonEnvironmentFactory(socket, policy);
  if (local) std::cerr << "bench: using the TEST environment (copies + bash), not the daemon\n";
  return BenchCommand(o, std::cout);
}

}  // namespace

int main(int argc, char** argv) {
  specula::InitLogging(std::getenv("SPECULA_LOG") ? std::getenv("SPECULA_LOG") : "warn",
                       "specula-trajectories");
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << "usage: specula-trajectories record|verify FILE... | train ... | eval ... | bench [options]\n";
    return 2;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "record" || cmd == "verify") return RecordOrVerify(args, cmd == "record");
  if (cmd == "bench") return Bench(args);
  if (cmd == "eval") return Evaluate(args);
  if (cmd == "train") return Train(args);
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
