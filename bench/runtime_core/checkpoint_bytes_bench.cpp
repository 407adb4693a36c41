// What checkpoint elision saves, in bytes (issue 7): every example
// trajectory (agents/trajectories/*.jsonl, its "step" commands) is committed
// step by step through a real SessionManager twice, once with elision (the
// daemon's behaviour: a CRIU dump only when the action left processes) and
// once with `elide_checkpoints = false` (a CRIU dump at every checkpoint),
// instrumentation on in both as the daemon runs. After each commit the new
// head checkpoint's record gives its CRIU image bytes, the bytes of the layer
// it added and the size of its shell state; the sums of the two runs give
// the fraction of checkpoint bytes (and of CRIU image bytes) elision avoids,
// over the steps both runs completed.
// The two runs of a trajectory are peers: run back to back, their order
// alternating per trajectory so machine noise hits both alike, with p50/p90
// commit latency side by side. Each step's exit code and stdout are compared
// between the two runs (some steps print dates or timings: counted, not
// fatal).
//
// Each run gets a fresh state dir under /var/tmp and, as the daemon's bench
// environment does (agents/bench.cpp), a setup commit exporting $W, a work
// dir inside the sandbox, and cd'ing into it; that setup checkpoint is not
// counted. Root only. Usage:
//   checkpoint_bytes_bench [--dir DIR]... [--max N] [--json] [--verbose]
// --dir may be repeated: a later dir's file replaces an earlier one of the
// same name (to try variants of some trajectories). The two service
// trajectories leave a TCP server running: on kernels >= 6.16 that needs
// CRIU >= 4.2 (docs/ebpf.md "Checkpoint elision").
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/trajectory_steps.h"
#include "common/files.h"
#include "common/log.h"
#include "runtime/core/session_manager.h"

namespace {

using namespace specula;
using Clock = std::chrono::steady_clock;

// One committed step as the run saw it.
struct Step {
  bool ok = false;  // Commit returned a result (the command itself may still have failed)
  std::string error;
  int exit_code = -1;
  bool timed_out = false;
  std::string stdout_data;
  double commit_ms = 0;
  bool dumped = false;
  uint64_t image_bytes = 0, layer_bytes = 0, shell_bytes = 0;
};

// Over the steps both runs completed, so a step that failed on one side
// only (its bytes missing there) does not skew the comparison; `failed`
// counts this side's failed steps.
struct Sums {
  int steps = 0, failed = 0, dumps = 0;
  uint64_t image = 0, layer = 0, shell = 0;
  uint64_t total() const { return image + layer + shell; }
  void Add(const Step& s) {
    ++steps;
    dumps += s.dumped ? 1 : 0;
    image += s.image_bytes;
    layer += s.layer_bytes;
    shell += s.shell_bytes;
  }
  void Add(const Sums& o) {
    steps += o.steps;
    failed += o.failed;
    dumps += o.dumps;
    image += o.image;
    layer += o.layer;
    shell += o.shell;
  }
  nlohmann::json ToJson() const {
    return {{"steps", steps}, {"failed", failed},       {"criu_dumps", dumps}, {"image_bytes", image},
            {"layer_bytes", layer}, {"shell_state_bytes", shell}, {"checkpoint_bytes", total()}};
  }
};

double Fraction(uint64_t saved_from, uint64_t left) {
  return saved_from == 0 ? 0.0 : 1.0 - static_cast<double>(left) / static_cast<double>(saved_from);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Lines of /proc/self/mountinfo naming `needle`: what a run left mounted.
int CountMounts(const std::string& needle) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

// Commits `commands` in a fresh SessionManager (elision on or off) and reads
// each new head checkpoint. One Step per command; those that could not run
// (the manager or the session could not be set up) are failed.
std::vector<Step> RunTrajectory(const std::string& name, const std::vector<std::string>& commands, bool elide,
                                bool verbose) {
  std::vector<Step> steps;
  char tmpl[] = "/var/tmp/specula-bytes-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "mkdtemp: %s\n", std::strerror(errno));
    return steps;
  }
  const std::string dir = tmpl;
  {
    core::SessionManagerOptions o;
    o.state_dir = dir + "/state";
    o.elide_checkpoints = elide;
    auto mgr = core::SessionManager::Open(o);
    if (!mgr.ok()) {
      std::fprintf(stderr, "%s: open: %s\n", name.c_str(), mgr.error().ToString().c_str());
    } else {
      core::CreateSessionRequest req;
      req.name = name;
      req.policy = policy::DefaultPolicy();
      req.target = policy::PromoteTarget::kLayer;
      auto s = (*mgr)->CreateSession(req);
      // The work dir lives inside the sandbox's overlay: nothing reaches the host.
      const std::string setup =
          "export W='/tmp/specula-bytes-work/" + name + "' && mkdir -p \"$W\" && cd \"$W\"";
      auto set = s.ok() ? (*mgr)->Commit(s->record.id, setup) : Result<core::CommitResult>(s.error());
      if (!set.ok() || set->exit_code != 0) {
        std::fprintf(stderr, "%s: setup: %s\n", name.c_str(),
                     set.ok() ? set->stderr_data.c_str() : set.error().ToString().c_str());
      } else {
        for (const std::string& cmd : commands) {
          Step st;
          auto t0 = Clock::now();
          auto r = (*mgr)->Commit(s->record.id, cmd);
          st.commit_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          if (!r.ok()) {
            st.error = r.error().ToString();
            std::fprintf(stderr, "%s (%s): commit `%s`: %s\n", name.c_str(), elide ? "elide" : "always-dump",
                         cmd.c_str(), st.error.c_str());
            steps.push_back(std::move(st));
            continue;
          }
          st.exit_code = r->exit_code;
          st.timed_out = r->timed_out;
          st.stdout_data = r->stdout_data;
          auto c = (*mgr)->ShowCheckpoint(r->head);
          if (!c.ok()) {
            st.error = c.error().ToString();
            std::fprintf(stderr, "%s: checkpoint %s: %s\n", name.c_str(), r->head.c_str(), st.error.c_str());
            steps.push_back(std::move(st));
            continue;
          }
          st.ok = true;
          st.dumped = c->has_process_image;
          st.image_bytes = c->image_bytes;
          st.layer_bytes = c->layer_bytes;
          st.shell_bytes = c->shell_state.size();
          if (verbose) {
            std::fprintf(stderr, "  %-11s exit %3d %s image %8llu layer %8llu shell %6llu %7.1f ms  %.60s\n",
                         elide ? "elide" : "always-dump", st.exit_code, st.dumped ? "dump" : "    ",
                         static_cast<unsigned long long>(st.image_bytes),
                         static_cast<unsigned long long>(st.layer_bytes),
                         static_cast<unsigned long long>(st.shell_bytes), st.commit_ms, cmd.c_str());
          }
          steps.push_back(std::move(st));
        }
      }
      if (s.ok()) {
        if (Status d = (*mgr)->DestroySession(s->record.id); !d.ok()) {
          std::fprintf(stderr, "%s: destroy session: %s\n", name.c_str(), d.ToString().c_str());
        }
      }
    }
  }  // the manager goes first: it unmounts the store's layer filesystem
  if (Status st = RemoveTree(dir); !st.ok()) std::fprintf(stderr, "cleanup: %s\n", st.ToString().c_str());
  steps.resize(commands.size());  // not run: failed
  return steps;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> dirs;
  int max_traj = 1000;
  bool json = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dirs.emplace_back(argv[++i]);
    } else if (a == "--max" && i + 1 < argc) {
      max_traj = std::atoi(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR]... [--max N] [--json] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "run as root\n");
    return 2;
  }
  InitLogging("warn");
  if (dirs.empty()) dirs.emplace_back(SPECULA_SOURCE_DIR "/agents/trajectories");
  // By file name, so a later --dir replaces a trajectory of an earlier one.
  std::map<std::string, std::filesystem::path> by_name;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".jsonl") continue;
      auto [it, added] = by_name.insert_or_assign(e.path().filename().string(), e.path());
      if (!added) std::fprintf(stderr, "using %s\n", it->second.c_str());
    }
    if (ec) std::fprintf(stderr, "%s: %s\n", dir.c_str(), ec.message().c_str());
  }
  std::vector<std::filesystem::path> files;
  for (const auto& [name, path] : by_name) files.push_back(path);
  if (files.empty()) {
    std::fprintf(stderr, "no *.jsonl trajectories\n");
    return 1;
  }
  const int mounts_before = CountMounts("specula-bytes-");

  Sums all_elide, all_dump;
  std::vector<double> ms_elide, ms_dump;
  int differ_exit = 0, differ_stdout = 0, compared = 0, n = 0;
  size_t steps_total = 0;
  nlohmann::json per = nlohmann::json::array();
  if (!json) {
    std::printf("%-34s %5s %11s %13s %13s %7s %9s\n", "trajectory", "steps", "dumps e/a", "ckpt B elide",
                "ckpt B always", "avoided", "differ");
  }
  for (const auto& file : files) {
    if (n >= max_traj) break;
    std::vector<std::string> commands = specula::bench::TrajectoryCommands(file);
    if (commands.empty()) continue;
    steps_total += commands.size();
    const std::string name = file.stem().string();
    // Alternate which mode runs first so drift (cache warmth, other load)
    // does not always favour the same side.
    const bool elide_first = n % 2 == 0;
    ++n;
    if (verbose) std::fprintf(stderr, "%s\n", name.c_str());
    std::vector<Step> a = RunTrajectory(name, commands, elide_first, verbose);
    std::vector<Step> b = RunTrajectory(name, commands, !elide_first, verbose);
    const std::vector<Step>& e = elide_first ? a : b;
    const std::vector<Step>& d = elide_first ? b : a;
    Sums se, sd;
    int dx = 0, ds = 0;
    for (size_t i = 0; i < commands.size(); ++i) {
      se.failed += e[i].ok ? 0 : 1;
      sd.failed += d[i].ok ? 0 : 1;
      if (!e[i].ok || !d[i].ok) continue;
      se.Add(e[i]);
      sd.Add(d[i]);
      ms_elide.push_back(e[i].commit_ms);
      ms_dump.push_back(d[i].commit_ms);
      ++compared;
      if (e[i].exit_code != d[i].exit_code || e[i].timed_out != d[i].timed_out) {
        ++dx;
        if (verbose) {
          std::fprintf(stderr, "  exit differs at step %zu: elide %d, always-dump %d: %s\n", i + 1, e[i].exit_code,
                       d[i].exit_code, commands[i].c_str());
        }
      } else if (e[i].stdout_data != d[i].stdout_data) {
        ++ds;
        if (verbose) std::fprintf(stderr, "  stdout differs at step %zu: %s\n", i + 1, commands[i].c_str());
      }
    }
    differ_exit += dx;
    differ_stdout += ds;
    all_elide.Add(se);
    all_dump.Add(sd);
    if (json) {
      per.push_back({{"trajectory", name},
                     {"elide", se.ToJson()},
                     {"always_dump", sd.ToJson()},
                     {"differ_exit", dx},
                     {"differ_stdout", ds}});
    } else {
      char dumps[32], differ[32];
      std::snprintf(dumps, sizeof dumps, "%d/%d", se.dumps, sd.dumps);
      std::snprintf(differ, sizeof differ, "%d/%d", dx, ds);
      std::printf("%-34s %5zu %11s %13llu %13llu %6.1f%% %9s\n", name.c_str(), commands.size(), dumps,
                  static_cast<unsigned long long>(se.total()), static_cast<unsigned long long>(sd.total()),
                  100.0 * Fraction(sd.total(), se.total()), differ);
    }
    std::fflush(stdout);
  }
  const int leaked_mounts = CountMounts("specula-bytes-") - mounts_before;

  const double bytes_avoided = Fraction(all_dump.total(), all_elide.total());
  const double image_avoided = Fraction(all_dump.image, all_elide.image);
  const double p50e = Percentile(ms_elide, 0.5), p90e = Percentile(ms_elide, 0.9);
  const double p50d = Percentile(ms_dump, 0.5), p90d = Percentile(ms_dump, 0.9);
  if (json) {
    nlohmann::json out = {
        {"trajectories", n},
        {"steps_total", steps_total},
        {"per_trajectory", per},
        {"elide", all_elide.ToJson()},
        {"always_dump", all_dump.ToJson()},
        {"dumps_avoided_fraction", all_dump.dumps == 0 ? 0.0 : 1.0 - static_cast<double>(all_elide.dumps) / all_dump.dumps},
        {"checkpoint_bytes_avoided_fraction", bytes_avoided},
        {"image_bytes_avoided_fraction", image_avoided},
        {"commit_ms", {{"elide", {{"n", ms_elide.size()}, {"p50", p50e}, {"p90", p90e}}},
                       {"always_dump", {{"n", ms_dump.size()}, {"p50", p50d}, {"p90", p90d}}}}},
        {"steps_compared", compared},
        {"differ_exit", differ_exit},
        {"differ_stdout", differ_stdout},
        {"leaked_mounts", leaked_mounts}};
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    auto line = [](const char* what, const Sums& s) {
      std::printf("%-12s steps %d (+%d failed)  CRIU dumps %d  image %llu B  layers %llu B  shell state %llu B  total %llu B\n",
                  what, s.steps, s.failed, s.dumps, static_cast<unsigned long long>(s.image),
                  static_cast<unsigned long long>(s.layer), static_cast<unsigned long long>(s.shell),
                  static_cast<unsigned long long>(s.total()));
    };
    std::printf("\ntrajectories %d, steps %zu; sums over the %d steps both runs completed\n", n, steps_total,
                compared);
    line("elide", all_elide);
    line("always-dump", all_dump);
    std::printf("CRIU dumps avoided: %d of %d (%.1f%%)\n", all_dump.dumps - all_elide.dumps, all_dump.dumps,
                all_dump.dumps == 0 ? 0.0 : 100.0 * (all_dump.dumps - all_elide.dumps) / all_dump.dumps);
    std::printf("checkpoint bytes avoided: %.1f%% (CRIU image bytes avoided: %.1f%%)\n", 100.0 * bytes_avoided,
                100.0 * image_avoided);
    std::printf("commit latency: elide p50 %.1f ms p90 %.1f ms (n=%zu); always-dump p50 %.1f ms p90 %.1f ms "
                "(n=%zu); ratio p50 %.2fx\n",
                p50e, p90e, ms_elide.size(), p50d, p90d, ms_dump.size(), p50d > 0 ? p50e / p50d : 0.0);
    std::printf("steps compared %d: exit code differs %d, stdout differs %d\n", compared, differ_exit, differ_stdout);
    if (leaked_mounts != 0) std::printf("WARNING: %d mounts left behind\n", leaked_mounts);
  }
  return all_elide.failed + all_dump.failed == 0 && leaked_mounts == 0 ? 0 : 3;
}
