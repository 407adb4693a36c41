// Per-branch cost of the egress guard: EgressGuard attach + detach on a fresh
// cgroup2 directory (what every branch fork pays), N times. Modes:
//   private  EgressGuard::Attach(path, network): loads and verifies its own
//            copy of the programs each time (how every branch paid before
//            the programs were shared)
//   shared   EgressGuard::Attach(programs, path, network) with one
//            EgressPrograms loaded up front (what a branch pays now: map
//            writes and 4 link creations)
// The two alternate iteration by iteration; the one-off load of the shared
// programs is printed too. Cgroup mkdir/rmdir are outside the timed part.
// Root only. Usage:
//   egress_attach_bench [N, default 50]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "ebpf/egress_guard.h"
#include "tests/ebpf/ebpf_test_util.h"

namespace {

using specula::ebpf::EgressGuard;
using specula::ebpf::EgressPrograms;
using specula::ebpf::testing::TestCgroup;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

void Print(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-10s p50 %8.3f ms  p90 %8.3f ms  (n=%zu)\n", what, v[v.size() / 2], v[v.size() * 9 / 10], v.size());
}

specula::policy::Network Allowlist() {
  specula::policy::Network net;
  net.mode = specula::policy::NetworkMode::kAllowlist;
  net.allow = {{"10.255.255.0/24", 9}, {"fd00::/8", 0}};
  return net;
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "egress_attach_bench: needs root\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const int n = argc > 1 ? std::atoi(argv[1]) : 50;
  if (n <= 0) return 2;
  const specula::policy::Network net = Allowlist();
  Clock::time_point l0 = Clock::now();
  auto programs = EgressPrograms::Load();
  const double load_ms = Ms(l0, Clock::now());
  if (!programs.ok()) {
    std::fprintf(stderr, "load: %s\n", programs.error().ToString().c_str());
    return 1;
  }
  std::vector<double> priv, shared;
  for (int i = 0; i < 2 * n; ++i) {
    const bool use_shared = (i % 2) == 1;
    TestCgroup cg("egress-bench-" + std::to_string(i));
    if (!cg.ok()) {
      std::fprintf(stderr, "cgroup: %s\n", cg.error().c_str());
      return 1;
    }
    Clock::time_point t0 = Clock::now();
    {
      auto g = use_shared ? EgressGuard::Attach(*programs, cg.path(), net) : EgressGuard::Attach(cg.path(), net);
      if (!g.ok()) {
        std::fprintf(stderr, "attach: %s\n", g.error().ToString().c_str());
        return 1;
      }
    }  // detaches
    (use_shared ? shared : priv).push_back(Ms(t0, Clock::now()));
  }
  std::printf("shared programs: one-off load %.3f ms\n", load_ms);
  Print("private", priv);
  Print("shared", shared);
  std::sort(priv.begin(), priv.end());
  std::sort(shared.begin(), shared.end());
  std::printf("ratio p50 private/shared %.1fx\n", priv[priv.size() / 2] / shared[shared.size() / 2]);
  return 0;
}
