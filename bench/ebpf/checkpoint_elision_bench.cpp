// Checkpoint elision measured on the example trajectories: each trajectory's
// commands run, in order, in one real Sandbox (default policy: overlay
// root, own namespaces, loopback-only network) whose cgroup the effect
// tracer follows. After every step DecideCheckpoint says whether that
// step's checkpoint needs a CRIU dump; the sandbox's own view
// (HasLiveProcesses, from its cgroup) is the ground truth it is checked
// against. Prints how many dumps are avoided and whether any elision was
// wrong. Root only. Usage:
//   checkpoint_elision_bench [trajectory dir, default agents/trajectories] [max trajectories]
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/trajectory_steps.h"
#include "ebpf/effect_analysis.h"
#include "ebpf/effect_tracer.h"
#include "sandbox/sandbox.h"

namespace {

using namespace std::chrono_literals;
using specula::ebpf::EffectJournal;
using specula::ebpf::EffectTracer;

struct Tally {
  int steps = 0;
  int failed_steps = 0;      // Run() errors (not command failures)
  int dumps_ebpf = 0;        // DecideCheckpoint asked for a CRIU dump
  int dumps_truth = 0;       // live processes after the step (HasLiveProcesses)
  int unsafe = 0;            // elided although processes were alive: must stay 0
  int extra = 0;             // dumped although nothing was alive (conservative)
  int incomplete = 0;        // trace incomplete (drops or no fork/exit hooks)
};

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "run as root\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const std::filesystem::path dir = argc > 1 ? argv[1] : SPECULA_SOURCE_DIR "/agents/trajectories";
  const int max_traj = argc > 2 ? std::atoi(argv[2]) : 1000;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".jsonl") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "no *.jsonl in %s\n", dir.c_str());
    return 1;
  }
  auto loaded = EffectTracer::Load();
  if (!loaded.ok()) {
    std::fprintf(stderr, "tracer: %s\n", loaded.error().ToString().c_str());
    return 1;
  }
  std::unique_ptr<EffectTracer> tracer = std::move(*loaded);

  Tally t;
  int n = 0;
  for (const auto& file : files) {
    if (n >= max_traj) break;
    std::vector<std::string> commands = specula::bench::TrajectoryCommands(file);
    if (commands.empty()) continue;
    const std::string name = "elision-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    const std::string root = "/tmp/specula-" + name;
    std::filesystem::create_directories(root + "/upper");
    std::filesystem::create_directories(root + "/work");
    specula::sandbox::SandboxSpec spec;
    spec.name = name;
    spec.upper_dir = root + "/upper";
    spec.work_dir = root + "/work";
    spec.run_dir = root + "/run";
    spec.policy = specula::policy::DefaultPolicy();
    auto sb = specula::sandbox::Sandbox::Create(spec);
    if (!sb.ok()) {
      std::fprintf(stderr, "%s: sandbox: %s\n", file.filename().c_str(), sb.error().ToString().c_str());
      std::filesystem::remove_all(root, ec);
      continue;
    }
    const uint64_t id = (*sb)->cgroup2_id();
    EffectJournal journal;
    if (!tracer->AddCgroup(id, journal.Sink()).ok()) return 1;
    int traj_dumps = 0;
    std::vector<pid_t> carried;  // live tgids tracked from the previous steps
    size_t traj_events = 0;
    for (const std::string& cmd : commands) {
      auto before = (*sb)->HasLiveProcesses();
      auto r = (*sb)->Run(cmd, 30s);
      ++t.steps;
      if (!r.ok() || !before.ok()) {
        ++t.failed_steps;
        continue;
      }
      if (!tracer->Drain().ok()) return 1;
      std::vector<specula::ebpf::EffectEvent> events = journal.Take();
      traj_events += events.size();
      const bool complete = tracer->Complete(id);
      // Processes alive before the step are all tracked (the trace started with
      // the sandbox) unless an earlier trace was incomplete.
      const bool untracked = *before && carried.empty();
      specula::ebpf::CheckpointPlan plan = specula::ebpf::DecideCheckpoint({events, complete, untracked, carried});
      carried = plan.running;
      auto after = (*sb)->HasLiveProcesses();
      if (!after.ok()) {
        ++t.failed_steps;
        continue;
      }
      t.incomplete += complete ? 0 : 1;
      t.dumps_ebpf += plan.criu_dump ? 1 : 0;
      traj_dumps += plan.criu_dump ? 1 : 0;
      t.dumps_truth += *after ? 1 : 0;
      if (!plan.criu_dump && *after) {
        ++t.unsafe;
        std::fprintf(stderr, "UNSAFE elision in %s: %s\n", file.filename().c_str(), cmd.c_str());
      }
      if (plan.criu_dump && !*after) ++t.extra;
    }
    std::printf("%-40s steps %2zu  dumps %2d  events %zu\n", file.filename().c_str(), commands.size(), traj_dumps,
                traj_events);
    (void)tracer->RemoveCgroup(id);
    if (auto st = (*sb)->Destroy(); !st.ok()) std::fprintf(stderr, "destroy: %s\n", st.ToString().c_str());
    sb->reset();
    std::filesystem::remove_all(root, ec);
  }
  const int ok_steps = t.steps - t.failed_steps;
  std::printf("trajectories %d, steps %d (%d failed to run)\n", n, t.steps, t.failed_steps);
  std::printf("CRIU dumps: always-dump %d, eBPF decision %d, ground truth %d\n", ok_steps, t.dumps_ebpf,
              t.dumps_truth);
  std::printf("dumps avoided: %d of %d (%.1f%%); unsafe elisions %d; conservative extra dumps %d; incomplete traces %d\n",
              ok_steps - t.dumps_ebpf, ok_steps, ok_steps > 0 ? 100.0 * (ok_steps - t.dumps_ebpf) / ok_steps : 0.0,
              t.unsafe, t.extra, t.incomplete);
  return t.unsafe == 0 ? 0 : 3;
}
