// Speculation-core benchmarks (docs/checkpoints.md "Figures"): p50/p90 of
//   fork      speculate -> branch done, from a shell-state-only checkpoint
//   fork+criu the same from a checkpoint with live processes, next to the
//             `criu restore` part of that same fork (the peer)
//   8 vs 1    eight concurrent forks until all are done, vs one
//   discard   DiscardBranch of a done branch as the caller sees it, and
//             until its background teardown is done
//   promote   Commit of a hit on a done branch (seal layer + checkpoint)
//   pool      the same forks with the warm pool (a sandbox prepared from
//             the head before the speculate), and a missed commit on a
//             warm sandbox vs on a fresh one (commit -> result + new head);
//             and 8 vs 1 again with a pool that holds 8
// and the checkpoint sizes. Usage: runtime_core_bench [iterations] (default 10).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "runtime/core/session_manager.h"

namespace {

using namespace specula;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void Print(const char* name, std::vector<double> v) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  std::printf("%-42s n=%-3zu p50=%8.2f ms  p90=%8.2f ms\n", name, v.size(), at(0.5), at(0.9));
}

template <typename T>
T Must(specula::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}
void Must(const specula::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  InitLogging("warn");
  int iters = argc > 1 ? std::max(1, std::atoi(argv[1])) : 10;
  char tmpl[] = "/var/tmp/specula-core-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = tmpl;
  std::vector<double> restore_ms;
  std::mutex restore_mu;
  {
    core::SessionManagerOptions o;
    o.state_dir = dir + "/state";
    // Time the `criu restore` inside each restored fork: the peer figure.
    o.create_restored_sandbox = [&](const sandbox::SandboxSpec& spec,
                                    const std::function<Result<pid_t>(const sandbox::RestoreTarget&)>& restore) {
      return sandbox::Sandbox::CreateRestored(spec, [&](const sandbox::RestoreTarget& t) -> Result<pid_t> {
        auto t0 = Clock::now();
        auto r = restore(t);
        std::lock_guard lock(restore_mu);
        restore_ms.push_back(Ms(t0, Clock::now()));
        return r;
      });
    };
    auto mgr = Must(core::SessionManager::Open(o), "open");
    policy::Policy p = policy::DefaultPolicy();
    p.speculation.max_branches_per_session = 8;
    p.speculation.max_concurrent_branches = 8;
    core::CreateSessionRequest req;
    req.policy = p;
    std::string s = Must(mgr->CreateSession(req), "create").record.id;

    auto fork_until_done = [&](const std::string& cmd) {
      auto t0 = Clock::now();
      std::string b = Must(mgr->Speculate(s, cmd), "speculate");
      Must(mgr->WaitBranch(b, 120s), "wait");
      auto info = Must(mgr->ShowBranch(b), "show");
      if (info.state != core::BranchState::kDone) {
        std::fprintf(stderr, "branch %s: %s %s\n", b.c_str(), core::ToString(info.state), info.error.c_str());
        std::exit(1);
      }
      return std::make_pair(b, Ms(t0, Clock::now()));
    };

    std::vector<double> fork, discard, teardown, promote, fork_criu, one, eight;
    for (int i = 0; i < iters; ++i) {
      auto [b, ms] = fork_until_done("true");
      fork.push_back(ms);
      auto t0 = Clock::now();
      Must(mgr->DiscardBranch(b), "discard");
      discard.push_back(Ms(t0, Clock::now()));
      // The teardown it queued (kill, unmount, cgroups, upper dir, record).
      mgr->WaitForDiscards();
      teardown.push_back(Ms(t0, Clock::now()));
    }
    for (int i = 0; i < iters; ++i) {
      std::string cmd = "echo " + std::to_string(i) + " > /var/tmp/bench-" + std::to_string(::getpid());
      fork_until_done(cmd);
      auto t0 = Clock::now();
      auto r = Must(mgr->Commit(s, cmd), "commit");
      promote.push_back(Ms(t0, Clock::now()));
      if (!r.hit) std::fprintf(stderr, "expected a hit\n");
    }
    for (int i = 0; i < iters; ++i) {
      one.push_back(fork_until_done("true").second);
      Must(mgr->Abort(s), "abort");
      auto t0 = Clock::now();
      std::vector<std::string> ids;
      for (int j = 0; j < 8; ++j) ids.push_back(Must(mgr->Speculate(s, "true"), "speculate"));
      for (const auto& id : ids) Must(mgr->WaitBranch(id, 120s), "wait");
      eight.push_back(Ms(t0, Clock::now()));
      Must(mgr->Abort(s), "abort");
    }
    auto layer_ckpt = Must(mgr->ShowCheckpoint(Must(mgr->ShowSession(s), "show").record.head), "ckpt");
    // Speculate until its action runs (the branch's state leaves
    // "starting"), and a missed commit, both without the pool, for the
    // pooled figures below.
    auto until_running = [](core::SessionManager& m, const std::string& session) {
      auto t0 = Clock::now();
      std::string b = Must(m.Speculate(session, "sleep 5"), "speculate");
      for (;;) {
        auto info = Must(m.ShowBranch(b), "show");
        if (info.state != core::BranchState::kStarting) break;
        std::this_thread::sleep_for(50us);
      }
      double ms = Ms(t0, Clock::now());
      Must(m.DiscardBranch(b), "discard");
      return ms;
    };
    std::vector<double> running_fresh, running_warm, miss_fresh, miss_warm, warm_fork, warm_fork_criu;
    for (int i = 0; i < iters; ++i) running_fresh.push_back(until_running(*mgr, s));
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      Must(mgr->Commit(s, "true"), "commit miss");
      miss_fresh.push_back(Ms(t0, Clock::now()));
    }

    // A head with a live process: every fork restores it with CRIU.
    auto live = Must(mgr->Commit(s, "(exec -a bench-bg sh -c 'while :; do sleep 1; done') >/dev/null 2>&1 </dev/null &"),
                     "commit bg");
    auto image_ckpt = Must(mgr->ShowCheckpoint(live.head), "ckpt");
    restore_ms.clear();
    for (int i = 0; i < iters; ++i) {
      auto [b, ms] = fork_until_done("true");
      fork_criu.push_back(ms);
      Must(mgr->DiscardBranch(b), "discard");
    }

    std::printf("runtime_core_bench: %d iterations, state dir on %s\n", iters, dir.c_str());
    Print("fork (shell-state ckpt) -> done", fork);
    Print("discard (done branch), caller", discard);
    Print("  discard + background teardown", teardown);
    Print("promote to layer (commit hit)", promote);
    Print("1 fork -> done", one);
    Print("8 concurrent forks -> all done", eight);
    Print("fork (live-process ckpt) -> done", fork_criu);
    {
      std::lock_guard lock(restore_mu);
      Print("  peer: criu restore inside it", restore_ms);
    }
    std::printf("checkpoint sizes: layer %llu bytes (one small file), CRIU image %llu bytes (sh + sleep)\n",
                static_cast<unsigned long long>(layer_ckpt.layer_bytes),
                static_cast<unsigned long long>(image_ckpt.image_bytes));
    Must(mgr->DestroySession(s), "destroy");
    mgr.reset();

    // The warm pool: one sandbox per head, waited for before each step (an
    // agent's think time is seconds; the fill takes milliseconds).
    o.state_dir = dir + "/pool-state";
    o.pool_per_session = 1;
    auto pmgr = Must(core::SessionManager::Open(o), "open (pool)");
    std::string ps = Must(pmgr->CreateSession(req), "create (pool)").record.id;
    auto wait_warm = [&] {
      for (int i = 0; i < 10000 && pmgr->pool_stats().ready < 1; ++i) std::this_thread::sleep_for(1ms);
    };
    auto warm_until_done = [&](const std::string& cmd) {
      wait_warm();
      auto t0 = Clock::now();
      std::string b = Must(pmgr->Speculate(ps, cmd), "speculate (pool)");
      Must(pmgr->WaitBranch(b, 120s), "wait (pool)");
      double ms = Ms(t0, Clock::now());
      Must(pmgr->DiscardBranch(b), "discard (pool)");
      return ms;
    };
    for (int i = 0; i < iters; ++i) warm_fork.push_back(warm_until_done("true"));
    for (int i = 0; i < iters; ++i) {
      wait_warm();
      running_warm.push_back(until_running(*pmgr, ps));
    }
    for (int i = 0; i < iters; ++i) {
      wait_warm();
      auto t0 = Clock::now();
      Must(pmgr->Commit(ps, "true"), "commit miss (pool)");
      miss_warm.push_back(Ms(t0, Clock::now()));
    }
    Must(pmgr->Commit(ps, "(exec -a bench-bg sh -c 'while :; do sleep 1; done') >/dev/null 2>&1 </dev/null &"),
         "commit bg (pool)");
    for (int i = 0; i < iters; ++i) warm_fork_criu.push_back(warm_until_done("true"));
    std::vector<double> running_warm_criu;
    for (int i = 0; i < iters; ++i) {
      wait_warm();
      running_warm_criu.push_back(until_running(*pmgr, ps));
    }
    auto st = pmgr->pool_stats();
    std::printf("warm pool: %llu takes, %llu without a ready sandbox\n", static_cast<unsigned long long>(st.hits),
                static_cast<unsigned long long>(st.misses));
    Print("speculate -> running, fresh", running_fresh);
    Print("speculate -> running, warm", running_warm);
    Print("speculate -> running, warm (live-process)", running_warm_criu);
    Print("warm: fork (shell-state) -> done", warm_fork);
    Print("warm: fork (live-process) -> done", warm_fork_criu);
    Print("missed commit, fresh sandbox", miss_fresh);
    Print("missed commit, warm sandbox", miss_warm);
    Must(pmgr->DestroySession(ps), "destroy (pool)");
    pmgr.reset();

    // k = 8 with a pool that holds 8 (speculad --pool-per-session 8
    // --pool-total 8): eight speculates at once until all are done, each
    // round on a new head (a missed commit) whose pool was waited for, as
    // an agent's think time allows. Every head asks for nine (eight and the
    // commit), so the pool's target stays at eight.
    o.state_dir = dir + "/pool8-state";
    o.pool_per_session = 8;
    o.pool_total = 8;
    auto p8 = Must(core::SessionManager::Open(o), "open (pool 8)");
    std::string s8 = Must(p8->CreateSession(req), "create (pool 8)").record.id;
    auto wait8 = [&] {
      for (int i = 0; i < 20000; ++i) {
        auto ps8 = p8->pool_stats();
        if (ps8.ready >= 8 && ps8.filling == 0) break;
        if (i == 19999) {  // a round starts anyway; its takes show as "without a ready sandbox"
          std::fprintf(stderr, "pool of 8: only %llu ready after 20 s\n", static_cast<unsigned long long>(ps8.ready));
        }
        std::this_thread::sleep_for(1ms);
      }
      p8->WaitForDiscards();
    };
    std::vector<double> eight8;
    for (int i = 0; i < iters; ++i) {
      wait8();
      auto t0 = Clock::now();
      std::vector<std::string> ids;
      for (int j = 0; j < 8; ++j) ids.push_back(Must(p8->Speculate(s8, "true"), "speculate (pool 8)"));
      for (const auto& id : ids) Must(p8->WaitBranch(id, 120s), "wait (pool 8)");
      eight8.push_back(Ms(t0, Clock::now()));
      Must(p8->Commit(s8, "true"), "commit (pool 8)");
    }
    auto st8 = p8->pool_stats();
    std::printf("warm pool of 8: %llu takes, %llu without a ready sandbox\n",
                static_cast<unsigned long long>(st8.hits), static_cast<unsigned long long>(st8.misses));
    // Its one-speculate peer is "warm: fork (shell-state) -> done" above.
    Print("warm pool of 8: 8 concurrent -> all done", eight8);
    Must(p8->DestroySession(s8), "destroy (pool 8)");
  }
  Must(RemoveTree(dir), "cleanup");
  return 0;
}
