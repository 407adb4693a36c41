// sandbox_bench: what a sandbox costs, next to its peers in the same run.
//   cycle:  Sandbox::Create + Run("true") + Destroy (a branch's whole life
//           without CRIU)  vs  `bwrap --unshare-all --ro-bind / / --dev /dev
//           --proc /proc true`
//           and vs Anthropic's sandbox runtime, `srt -s SETTINGS true` (no
//           network, no writes; scripts/setup.sh installs it under
//           /opt/specula/bench-peers, $SPECULA_SRT overrides; skipped with a
//           message when it is missing or fails)
//   pooled: the same cycle as the warm pool's caller sees it: create done
//           before, destroy after (the first Run("true") alone)
//   Every sandbox gets the mapping user namespace and the device program
//   the runtime makes once per daemon and shares (session_manager.cpp).
//   action: Run("true") in a live sandbox (setns + seccomp + bash wrapper
//           with state capture)  vs  `bash -c true` spawned on the host
// Iterations are interleaved so machine noise hits both sides alike.
// Usage (root): sandbox_bench [iterations, default 30]
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/spawn.h"
#include "sandbox/sandbox.h"

using namespace specula;
using namespace specula::sandbox;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Print(const char* what, const std::vector<double>& mine, const char* peer_name,
           const std::vector<double>& peer) {
  double p50 = Percentile(mine, 0.5), p90 = Percentile(mine, 0.9);
  double q50 = Percentile(peer, 0.5), q90 = Percentile(peer, 0.9);
  std::printf("%-8s p50 %7.2f ms  p90 %7.2f ms | %-28s p50 %7.2f ms  p90 %7.2f ms | ratio p50 %.2fx\n",
              what, p50, p90, peer_name, q50, q90, p50 / q50);
}

struct Dirs {
  std::string root, upper, work, run;
  explicit Dirs(const std::string& name)
      : root("/tmp/specula-bench-" + name), upper(root + "/upper"), work(root + "/work"), run(root + "/run") {
    std::filesystem::create_directories(upper);
    std::filesystem::create_directories(work);
  }
  ~Dirs() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
};

// What the runtime makes once per daemon and shares (session_manager.cpp).
struct Shared {
  std::shared_ptr<const MappingUserns> idmap;
  std::shared_ptr<const DeviceFilterProgram> device_filter;
};

SandboxSpec Spec(const std::string& name, const Dirs& d, const Shared& shared) {
  SandboxSpec s;
  s.idmap = shared.idmap;
  s.device_filter = shared.device_filter;
  s.name = name;
  s.upper_dir = d.upper;
  s.work_dir = d.work;
  s.run_dir = d.run;
  s.policy = policy::DefaultPolicy();
  return s;
}

bool SpawnOk(const std::vector<std::string>& argv) {
  SpawnOptions o;
  o.argv = argv;
  auto r = Spawn(o);
  return r.ok() && r->success();
}

}  // namespace

// The srt command line, or {} (with the reason on stderr) when srt is not
// there or does not run here.
std::vector<std::string> SrtCommand(const std::string& settings_path) {
  const char* env = std::getenv("SPECULA_SRT");
  std::string srt = env ? env : "/opt/specula/bench-peers/node_modules/.bin/srt";
  if (::access(srt.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "sandbox_bench: %s missing (scripts/setup.sh installs it): srt peer skipped\n", srt.c_str());
    return {};
  }
  // No network, writes nowhere: the closest srt comes to a branch that runs `true`.
  std::ofstream(settings_path) << R"({"network":{"allowedDomains":[],"deniedDomains":[]},)"
                               << R"("filesystem":{"denyRead":[],"allowWrite":[],"denyWrite":[]}})";
  std::vector<std::string> cmd = {srt, "-s", settings_path, "true"};
  if (!SpawnOk(cmd)) {
    std::fprintf(stderr, "sandbox_bench: `%s -s %s true` failed: srt peer skipped\n", srt.c_str(),
                 settings_path.c_str());
    return {};
  }
  return cmd;
}

int main(int argc, char** argv) {
  InitLogging("warn", "sandbox_bench");
  if (::geteuid() != 0) {
    std::fprintf(stderr, "sandbox_bench: needs root\n");
    return 2;
  }
  int n = argc > 1 ? std::atoi(argv[1]) : 30;
  if (n < 1) n = 30;
  const std::vector<std::string> bwrap = {"bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
                                          "--proc", "/proc", "true"};
  if (!SpawnOk(bwrap)) {
    std::fprintf(stderr, "sandbox_bench: bwrap failed or missing\n");
    return 2;
  }
  const std::string srt_settings = "/tmp/sandbox_bench-srt-" + std::to_string(::getpid()) + ".json";
  struct RemoveAtExit {
    std::string path;
    ~RemoveAtExit() { std::filesystem::remove(path); }
  } srt_settings_file{srt_settings};  // every return path, the error ones included
  const std::vector<std::string> srt = SrtCommand(srt_settings);
  std::vector<double> cycle, bw, sr, action, bash, create_ms, run_ms, destroy_ms;
  const std::string base = "bench-" + std::to_string(::getpid());
  Shared shared;
  auto idmap = MappingUserns::Create(IdRange{});
  auto device_filter = DeviceFilterProgram::Load();
  if (!idmap.ok() || !device_filter.ok()) {
    std::fprintf(stderr, "sandbox_bench: %s\n",
                 (!idmap.ok() ? idmap.error() : device_filter.error()).ToString().c_str());
    return 1;
  }
  shared.idmap = std::move(*idmap);
  shared.device_filter = std::move(*device_filter);
  Dirs live_dirs(base + "-live");
  auto live = Sandbox::Create(Spec(base + "-live", live_dirs, shared));
  if (!live.ok()) {
    std::fprintf(stderr, "sandbox_bench: %s\n", live.error().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < n; ++i) {
    {
      Dirs d(base + "-" + std::to_string(i));
      auto t0 = Clock::now();
      auto sb = Sandbox::Create(Spec(base + "-" + std::to_string(i), d, shared));
      if (!sb.ok()) {
        std::fprintf(stderr, "create: %s\n", sb.error().ToString().c_str());
        return 1;
      }
      auto t_created = Clock::now();
      auto r = (*sb)->Run("true");
      auto t_ran = Clock::now();
      Status st = (*sb)->Destroy();
      auto t_end = Clock::now();
      cycle.push_back(Ms(t_end - t0));
      create_ms.push_back(Ms(t_created - t0));
      run_ms.push_back(Ms(t_ran - t_created));
      destroy_ms.push_back(Ms(t_end - t_ran));
      if (!r.ok() || r->exit_code != 0 || !st.ok()) {
        std::fprintf(stderr, "cycle %d failed\n", i);
        return 1;
      }
    }
    auto t1 = Clock::now();
    if (!SpawnOk(bwrap)) return 1;
    bw.push_back(Ms(Clock::now() - t1));
    if (!srt.empty()) {
      auto ts = Clock::now();
      if (!SpawnOk(srt)) return 1;
      sr.push_back(Ms(Clock::now() - ts));
    }

    auto t2 = Clock::now();
    auto r = (*live)->Run("true");
    action.push_back(Ms(Clock::now() - t2));
    if (!r.ok() || r->exit_code != 0) return 1;
    auto t3 = Clock::now();
    if (!SpawnOk({"bash", "-c", "true"})) return 1;
    bash.push_back(Ms(Clock::now() - t3));
  }
  std::printf("sandbox_bench: %d iterations, %ld cores\n", n, ::sysconf(_SC_NPROCESSORS_ONLN));
  Print("cycle", cycle, "bwrap --unshare-all ... true", bw);
  if (!sr.empty()) Print("cycle", cycle, "srt -s (no net, no writes) true", sr);
  Print("pooled", run_ms, "bwrap --unshare-all ... true", bw);
  Print("action", action, "bash -c true (host)", bash);
  std::printf("cycle parts p50: create %.2f ms, first run %.2f ms, destroy %.2f ms\n",
              Percentile(create_ms, 0.5), Percentile(run_ms, 0.5), Percentile(destroy_ms, 0.5));
  return (*live)->Destroy().ok() ? 0 : 1;
}
