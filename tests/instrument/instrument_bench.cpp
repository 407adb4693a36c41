// Bench binary (not a test): what branch instrumentation adds to a branch.
//   peer:          Sandbox::Create + Run(action) + Destroy
//   instrumented:  Prepare (2 lossy files) + Create + Attach + Run + Finish
//                  + Destroy + Discard, with the shared tracer already loaded
// both in the same process, alternating, so the ratio is the overhead per
// branch. Also prints the one-off tracer load (first TracingStatus) and
// unload (destroying the Instrumentation). Usage: instrument_bench [runs] [action]
// (default 20, "echo hi > /tmp/x; cat /etc/hostname"). Run as root.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/instrument/branch_instrument.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace {

using Clock = std::chrono::steady_clock;
using specula::sandbox::testing::MakeSpec;
using specula::sandbox::testing::ScratchDirs;
using specula::sandbox::testing::UniqueName;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
void Print(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-15s p50 %8.2f ms  p90 %8.2f ms  (n=%zu)\n", what, v[v.size() / 2], v[v.size() * 9 / 10], v.size());
}
double P50(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One branch; instr == nullptr: the uninstrumented peer. Returns ms or < 0.
// Per-phase times of the instrumented branches: prepare, attach, finish, discard.
struct Phases {
  std::vector<double> prepare, attach, finish, discard;
  std::vector<double> create_peer, create_instr, run_peer, run_instr, destroy_peer, destroy_instr;
};

double OneBranch(specula::instrument::Instrumentation* instr, const std::string& action, Phases& phases) {
  std::string name = UniqueName("instr-bench");
  ScratchDirs dirs(name);
  std::string host = dirs.root() + "/host", state = dirs.root() + "/state";
  std::filesystem::create_directories(host);
  std::filesystem::create_directories(state);
  std::ofstream(host + "/a") << "1\n";
  std::ofstream(host + "/b") << "2\n";
  specula::sandbox::SandboxSpec spec = MakeSpec(name, dirs);
  using specula::policy::Compensation;
  using specula::policy::PathMode;
  spec.policy.paths.push_back({host + "/a", PathMode::kLossy, "a", Compensation::kRestore, ""});
  spec.policy.paths.push_back({host + "/b", PathMode::kLossy, "b", Compensation::kNone, ""});

  auto t0 = Clock::now();
  std::unique_ptr<specula::instrument::BranchProbe> probe;
  if (instr != nullptr) {
    auto p = instr->Prepare(spec.policy, state);
    if (!p.ok()) return std::fprintf(stderr, "prepare: %s\n", p.error().ToString().c_str()), -1;
    phases.prepare.push_back(Ms(t0, Clock::now()));
    probe = std::move(*p);
    spec.binds = probe->binds();
  } else {
    spec.policy.paths.clear();  // the peer has no lossy binds to honour
  }
  auto c = Clock::now();
  auto sb = specula::sandbox::Sandbox::Create(spec);
  (instr ? phases.create_instr : phases.create_peer).push_back(Ms(c, Clock::now()));
  if (!sb.ok()) return std::fprintf(stderr, "create: %s\n", sb.error().ToString().c_str()), -1;
  if (probe) {
    auto a = Clock::now();
    if (!probe->Attach(**sb).ok()) return std::fprintf(stderr, "attach failed\n"), -1;
    phases.attach.push_back(Ms(a, Clock::now()));
  }
  auto ra = Clock::now();
  auto r = (*sb)->Run(action, std::chrono::seconds(20));
  (instr ? phases.run_instr : phases.run_peer).push_back(Ms(ra, Clock::now()));
  if (!r.ok()) return std::fprintf(stderr, "run: %s\n", r.error().ToString().c_str()), -1;
  if (probe) {
    auto f = Clock::now();
    auto rep = probe->Finish();
    if (!rep.ok()) return std::fprintf(stderr, "finish: %s\n", rep.error().ToString().c_str()), -1;
    phases.finish.push_back(Ms(f, Clock::now()));
  }
  auto x = Clock::now();
  if (!(*sb)->Destroy().ok()) return -1;
  (instr ? phases.destroy_instr : phases.destroy_peer).push_back(Ms(x, Clock::now()));
  if (probe) {
    auto d = Clock::now();
    if (!probe->Discard().ok()) return -1;
    phases.discard.push_back(Ms(d, Clock::now()));
  }
  return Ms(t0, Clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(2, std::atoi(argv[1])) : 20;
  std::string action = argc > 2 ? argv[2] : "echo hi > /tmp/x; cat /etc/hostname";
  spdlog::set_level(spdlog::level::err);
  auto instr = std::make_unique<specula::instrument::Instrumentation>();
  auto t0 = Clock::now();
  specula::Status tracing = instr->TracingStatus();
  auto t1 = Clock::now();
  std::printf("tracer load    %8.2f ms  (%s)\n", Ms(t0, t1), tracing.ToString().c_str());
  std::vector<double> peer, instrumented;
  Phases phases;
  for (int i = 0; i < runs; ++i) {
    double p = OneBranch(nullptr, action, phases);
    double q = OneBranch(instr.get(), action, phases);
    if (p < 0 || q < 0) return 1;
    peer.push_back(p);
    instrumented.push_back(q);
  }
  Print("peer", peer);
  Print("instrumented", instrumented);
  std::printf("ratio p50      %8.2f\n", P50(instrumented) / P50(peer));
  Print("  prepare", phases.prepare);
  Print("  attach", phases.attach);
  Print("  finish", phases.finish);
  Print("  discard", phases.discard);
  Print("  create peer", phases.create_peer);
  Print("  create instr", phases.create_instr);
  Print("  run peer", phases.run_peer);
  Print("  run instr", phases.run_instr);
  Print("  destroy peer", phases.destroy_peer);
  Print("  destroy instr", phases.destroy_instr);
  auto t2 = Clock::now();
  instr.reset();
  std::printf("tracer unload  %8.2f ms\n", Ms(t2, Clock::now()));
  return 0;
}
