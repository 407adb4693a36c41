// How much slower an action runs when its branch is traced by the effect
// tracer. The workload is action-heavy on purpose: a process that creates,
// writes, renames and unlinks files in a loop and fork+execs /bin/true,
// i.e. mostly hooked system calls. Three modes, measured in one run:
//   traced    tracer loaded, the workload's cgroup registered (events flow
//             through the ring buffer to a journal on a consumer thread)
//   untraced  tracer loaded, the workload's cgroup not registered (what every
//             other process on the host pays)
//   no_bpf    tracer not loaded
// each of the first two for both syscall hook sets (per-syscall tracepoints
// and raw sys_enter/sys_exit). traced and untraced alternate iteration by
// iteration; the hook sets and no_bpf alternate by blocks, in rotating
// order (a load + unload of the tracepoint set takes seconds). Prints p50/p90 of wall time and of the action's own CPU
// time (steadier on a busy machine; the BPF programs run in the action's
// context, so their cost is in it) and the ratios. Root only. Usage:
//   effects_overhead_bench [iterations per block, default 10] [blocks, default 12]
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "ebpf/effect_analysis.h"
#include "ebpf/effect_tracer.h"
#include "tests/ebpf/ebpf_test_util.h"

namespace {

using specula::ebpf::EffectJournal;
using specula::ebpf::EffectTracer;
using specula::ebpf::EffectTracerOptions;
using specula::ebpf::SyscallHooks;
using specula::ebpf::testing::GatedChild;
using specula::ebpf::testing::TestCgroup;
using Clock = std::chrono::steady_clock;

constexpr int kFileRounds = 200;
constexpr int kExecs = 5;

struct WorkArgs {
  char dir[256];
};

constexpr int kLoopCalls = 50000;

// Per-syscall cost: a hooked syscall that fails at once (unlink of a missing
// name) or an unhooked one (getppid). Runs in a forked child.
int UnlinkLoop(void*) {
  for (int i = 0; i < kLoopCalls; ++i) (void)::unlink("/nonexistent-specula-bench");
  return 0;
}
int GetppidLoop(void*) {
  for (int i = 0; i < kLoopCalls; ++i) (void)::getppid();
  return 0;
}

// One "action". Runs in a forked child: system calls only.
int Workload(void* p) {
  const char* d = static_cast<WorkArgs*>(p)->dir;
  if (::chdir(d) != 0) return 10;
  char buf[4096] = {};
  for (int i = 0; i < kFileRounds; ++i) {
    int fd = ::open("f.tmp", O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return 11;
    if (::write(fd, buf, sizeof(buf)) != static_cast<ssize_t>(sizeof(buf))) return 12;
    ::close(fd);
    if (::rename("f.tmp", "f.dat") != 0) return 13;
    if (::unlink("f.dat") != 0) return 14;
  }
  for (int i = 0; i < kExecs; ++i) {
    pid_t c = ::fork();
    if (c < 0) return 15;
    if (c == 0) {
      char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
      ::execv("/bin/true", argv);
      ::_exit(127);
    }
    int st = 0;
    if (::waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 16;
  }
  return 0;
}

struct Sample {
  double wall_us = -1;  // release to reaped
  double cpu_us = -1;   // the action's own user+system time (BPF hooks run in it)
};

// One run of body in cgroup cg.
Sample RunOnce(const TestCgroup& cg, WorkArgs* args, int (*body)(void*) = Workload) {
  GatedChild child(body, args);
  if (child.pid() <= 0 || !cg.Move(child.pid())) return {};
  auto t0 = Clock::now();
  if (!child.Release()) return {};
  struct rusage ru {};
  int rc = child.Wait(&ru);
  auto t1 = Clock::now();
  if (rc != 0) {
    std::fprintf(stderr, "workload failed: %d\n", rc);
    return {};
  }
  auto us = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec); };
  return {std::chrono::duration<double, std::micro>(t1 - t0).count(), us(ru.ru_utime) + us(ru.ru_stime)};
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 10;
  const int blocks = argc > 2 ? std::atoi(argv[2]) : 12;
  if (::geteuid() != 0 || iterations <= 0 || blocks <= 0) {
    std::fprintf(stderr, "usage (as root): %s [iterations>0] [blocks>0]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  TestCgroup cg_traced("bench-traced"), cg_untraced("bench-untraced"), cg_nobpf("bench-nobpf");
  if (!cg_traced.ok() || !cg_untraced.ok() || !cg_nobpf.ok()) {
    std::fprintf(stderr, "cgroup: %s\n", cg_traced.error().c_str());
    return 1;
  }
  char tmpl[] = "/tmp/specula-ebpf-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  WorkArgs args{};
  std::snprintf(args.dir, sizeof(args.dir), "%s", tmpl);

  // Per hook set (0: per-syscall tracepoints, 1: raw sys_enter/sys_exit).
  const SyscallHooks kHooks[2] = {SyscallHooks::kTracepoints, SyscallHooks::kRawTracepoints};
  std::vector<Sample> traced[2], untraced[2], nobpf;
  // Syscall loops, per mode (0 no_bpf, 1 tp/untraced, 2 tp/traced, 3 raw/untraced, 4 raw/traced).
  std::vector<double> unlink_ns[5], getppid_ns[5];
  auto loops = [&](int mode, const TestCgroup& cg) {
    Sample u = RunOnce(cg, &args, UnlinkLoop), g = RunOnce(cg, &args, GetppidLoop);
    if (u.cpu_us < 0 || g.cpu_us < 0) return false;
    unlink_ns[mode].push_back(u.cpu_us * 1000.0 / kLoopCalls);
    getppid_ns[mode].push_back(g.cpu_us * 1000.0 / kLoopCalls);
    return true;
  };
  uint64_t events = 0, dropped = 0;
  double load_ms[2] = {0, 0}, unload_ms[2] = {0, 0};
  for (int b = 0; b < blocks; ++b) {
    // Three phases per block (tracepoints, raw, no BPF), in a rotating order
    // so slow drifts of a shared machine spread over all of them.
    for (int k = 0; k < 3; ++k) {
      const int phase = (b + k) % 3;
      if (phase == 2) {
        for (int i = 0; i < iterations; ++i) {
          Sample sm = RunOnce(cg_nobpf, &args);
          if (sm.wall_us < 0) return 1;
          nobpf.push_back(sm);
        }
        if (!loops(0, cg_nobpf)) return 1;
        continue;
      }
      const int h = phase;
      EffectTracerOptions opts;
      opts.hooks = kHooks[h];
      auto l0 = Clock::now();
      auto loaded = EffectTracer::Load(opts);
      load_ms[h] += std::chrono::duration<double, std::milli>(Clock::now() - l0).count();
      if (!loaded.ok()) {
        std::fprintf(stderr, "load: %s\n", loaded.error().ToString().c_str());
        return 1;
      }
      EffectJournal journal;  // outlives the tracer that appends to it
      std::unique_ptr<EffectTracer> tracer = std::move(*loaded);
      if (!tracer->AddCgroup(cg_traced.id(), journal.Sink()).ok() || !tracer->Start().ok()) return 1;
      for (int i = 0; i < iterations; ++i) {
        // Alternate the order so neither mode always runs second.
        bool traced_first = (i % 2) == 0;
        for (int j = 0; j < 2; ++j) {
          bool t = (j == 0) == traced_first;
          Sample sm = RunOnce(t ? cg_traced : cg_untraced, &args);
          if (sm.wall_us < 0) return 1;
          (t ? traced[h] : untraced[h]).push_back(sm);
        }
      }
      if (!tracer->Drain().ok()) return 1;
      events += journal.Take().size();
      if (auto st = tracer->Stats(cg_traced.id()); st.ok()) dropped += st->dropped;
      // The loops emit 50k events in a burst; drops there are not counted.
      if (!loops(1 + 2 * h, cg_untraced) || !loops(2 + 2 * h, cg_traced)) return 1;
      if (!tracer->Drain().ok()) return 1;
      (void)journal.Take();
      auto u0 = Clock::now();
      tracer.reset();
      unload_ms[h] += std::chrono::duration<double, std::milli>(Clock::now() - u0).count();
    }
  }
  std::filesystem::remove_all(tmpl);

  auto pick = [](const std::vector<Sample>& v, bool cpu) {
    std::vector<double> out;
    for (const Sample& sm : v) out.push_back(cpu ? sm.cpu_us : sm.wall_us);
    return out;
  };
  std::printf("workload: %d x (create+write 4KiB+rename+unlink), %d x fork+exec /bin/true\n", kFileRounds, kExecs);
  for (bool cpu : {false, true}) {
    std::printf("-- %s\n", cpu ? "action CPU time (user+sys, incl. its children)" : "wall time");
    auto row = [](const char* name, const std::vector<double>& v) {
      std::printf("%-13s n=%-4zu p50 %8.0f us   p90 %8.0f us\n", name, v.size(), Percentile(v, 0.5),
                  Percentile(v, 0.9));
    };
    auto ratio = [](const char* name, const std::vector<double>& a, const std::vector<double>& b) {
      std::printf("ratio %-24s p50 %.3f  p90 %.3f\n", name, Percentile(a, 0.5) / Percentile(b, 0.5),
                  Percentile(a, 0.9) / Percentile(b, 0.9));
    };
    auto no = pick(nobpf, cpu);
    auto tu = pick(untraced[0], cpu), tt = pick(traced[0], cpu);
    auto ru = pick(untraced[1], cpu), rt = pick(traced[1], cpu);
    row("no_bpf", no);
    row("tp/untraced", tu);
    row("tp/traced", tt);
    row("raw/untraced", ru);
    row("raw/traced", rt);
    ratio("tp traced/untraced", tt, tu);
    ratio("raw traced/untraced", rt, ru);
    ratio("tp traced/no_bpf", tt, no);
    ratio("raw traced/no_bpf", rt, no);
    ratio("tp untraced/no_bpf", tu, no);
    ratio("raw untraced/no_bpf", ru, no);
  }
  std::printf("-- per-syscall CPU cost, p50 over blocks (loops of %d calls)\n", kLoopCalls);
  const char* kModes[5] = {"no_bpf", "tp/untraced", "tp/traced", "raw/untraced", "raw/traced"};
  for (int m = 0; m < 5; ++m) {
    std::printf("%-13s unlink(missing) %6.0f ns   getppid %6.0f ns\n", kModes[m], Percentile(unlink_ns[m], 0.5),
                Percentile(getppid_ns[m], 0.5));
  }
  std::printf("events per traced action %.0f, dropped (actions only) %llu\n",
              static_cast<double>(events) / static_cast<double>(traced[0].size() + traced[1].size()),
              static_cast<unsigned long long>(dropped));
  std::printf("load/unload (mean of %d): tracepoints %.0f/%.0f ms, raw %.0f/%.0f ms\n", blocks, load_ms[0] / blocks,
              unload_ms[0] / blocks, load_ms[1] / blocks, unload_ms[1] / blocks);
  return 0;
}
