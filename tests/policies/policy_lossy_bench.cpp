// Bench binary (not a test): what policies cost a branch start.
//   policy load: LoadPolicyFile(sysadmin.toml), which also reads default.toml
//   lossy prepare: LossyJournal::Prepare for kernel-tuning.toml's knobs
//     (resolve, glob, capture pre-images, manifest), next to its peer: plain
//     open+read of the same files, so the ratio is the journal's overhead
//   collect+restore: after an action that changed nothing
// Prints p50/p90 of N runs (default 50). Run as root: reads /proc/sys.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "policies/policy_parser.h"
#include "runtime/lossy/lossy_journal.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double p50, p90;
};
Stats Summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 9 / 10]};
}
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(2, std::atoi(argv[1])) : 50;
  spdlog::set_level(spdlog::level::err);  // missing debugfs knobs would warn every run
  auto policy = specula::policy::LoadPolicyFile(specula::policy::FindShippedPolicy("kernel-tuning"));
  if (!policy.ok()) {
    std::fprintf(stderr, "%s\n", policy.error().message().c_str());
    return 1;
  }
  std::vector<double> load, prepare, peer, collect;
  std::vector<std::string> knobs;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    auto p = specula::policy::LoadPolicyFile(specula::policy::FindShippedPolicy("sysadmin"));
    auto t1 = Clock::now();
    if (!p.ok()) return 1;
    std::string dir = std::filesystem::temp_directory_path() / ("specula-lossy-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    auto j = specula::lossy::LossyJournal::Prepare(*policy, dir);
    auto t2 = Clock::now();
    if (!j.ok()) {
      std::fprintf(stderr, "%s\n", j.error().message().c_str());
      return 1;
    }
    if (knobs.empty()) {
      for (const auto& b : j->binds()) knobs.push_back(b.host_path);
    }
    auto c = j->CollectEffects();
    auto r = j->Restore();
    auto t3 = Clock::now();
    if (!c.ok() || !r.ok()) return 1;
    std::filesystem::remove_all(dir);
    // Peer: just reading every resolved knob once.
    auto t4 = Clock::now();
    char buf[4096];
    for (const auto& k : knobs) {
      int fd = ::open(k.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        while (::read(fd, buf, sizeof(buf)) > 0) {
        }
        ::close(fd);
      }
    }
    auto t5 = Clock::now();
    load.push_back(Ms(t0, t1));
    prepare.push_back(Ms(t1, t2));
    collect.push_back(Ms(t2, t3));
    peer.push_back(Ms(t4, t5));
  }
  Stats l = Summarise(load), pr = Summarise(prepare), pe = Summarise(peer), co = Summarise(collect);
  std::printf("runs %d, lossy paths resolved %zu\n", runs, knobs.size());
  std::printf("policy load (sysadmin + default)   p50 %.3f ms  p90 %.3f ms\n", l.p50, l.p90);
  std::printf("lossy prepare (kernel-tuning)      p50 %.3f ms  p90 %.3f ms\n", pr.p50, pr.p90);
  std::printf("peer: plain read of the same knobs p50 %.3f ms  p90 %.3f ms  (prepare/peer p50 ratio %.1f)\n",
              pe.p50, pe.p90, pr.p50 / pe.p50);
  std::printf("collect + restore, nothing changed p50 %.3f ms  p90 %.3f ms\n", co.p50, co.p90);
  return 0;
}
