// specula-trajectories: maintenance of the trajectory corpus and a way to run
// the bench before the `specula` CLI wires it.
//   record FILE...   run each trajectory with bash in a fresh temp work dir
//                    and write the outcomes into the file
//   verify FILE...   run each and compare with the recording (twice, in two
//                    different work dirs, to catch path-dependent output)
//   eval [DIR]       leave-one-out accuracy and calibration of the n-gram speculator
//   bench [--json [--steps]] [--scale X] [--only NAME]... [--socket PATH [--policy P] | --local-test]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "agents/bench.h"
#include "agents/builtin_speculators.h"
#include "agents/local_environment.h"
#include "agents/trajectory.h"
#include "common/log.h"

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

// Leave-one-out accuracy and calibration of the n-gram speculator.
int Eval(const std::vector<std::string>& args) {
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
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (a == "--json") o.json = true;
    else if (a == "--steps") o.include_steps = true;
    else if (a == "--scale") o.time_scale = std::atof(next().c_str());
    else if (a == "--only") o.only.push_back(next());
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
    std::cerr << "usage: specula-trajectories record|verify FILE... | eval [DIR] | bench [options]\n";
    return 2;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "record" || cmd == "verify") return RecordOrVerify(args, cmd == "record");
  if (cmd == "bench") return Bench(args);
  if (cmd == "eval") return Eval(args);
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
