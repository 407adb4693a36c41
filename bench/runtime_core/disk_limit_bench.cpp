// What enforcing resources.disk costs (docs/checkpoints.md "Disk limits"):
// the same actions through three SessionManagers whose stores differ only in
// their filesystem, interleaved so machine noise hits all alike:
//   ext4            what older builds made: no limits (the peer)
//   btrfs simple    btrfs, simple quotas, a subvolume per branch (the default)
//   btrfs full      btrfs, classic qgroups (kernels before 6.7)
// Per store, p50/p90 of
//   commit small    Commit of `echo $i > /tmp/f` (fork, run, seal, head)
//   commit 2000     Commit of an action writing 2000 small files
//   fork -> done    speculate `true` from a checkpoint with layers, until done
//   discard         DiscardBranch of that done branch
// Root only. Usage: disk_limit_bench [iterations, default 10].
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
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

double At(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}
void Must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

struct Store {
  const char* name = "";
  const char* fs = "";       // SPECULA_STORE_FS
  const char* qgroups = "";  // SPECULA_STORE_QGROUPS
  std::unique_ptr<core::SessionManager> mgr;
  std::string session;
  std::map<std::string, std::vector<double>> ms;
};

}  // namespace

int main(int argc, char** argv) {
  InitLogging("warn");
  int iters = argc > 1 ? std::max(1, std::atoi(argv[1])) : 10;
  char tmpl[] = "/var/tmp/specula-disk-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = tmpl;
  std::vector<Store> stores(3);
  const char* kinds[3][3] = {{"ext4 (no limits)", "ext4", ""},
                             {"btrfs simple quotas", "btrfs", ""},
                             {"btrfs full qgroups", "btrfs", "full"}};
  for (size_t k = 0; k < stores.size(); ++k) {
    stores[k].name = kinds[k][0];
    stores[k].fs = kinds[k][1];
    stores[k].qgroups = kinds[k][2];
  }
  {
    for (auto& st : stores) {
      // The store reads these when it makes its filesystem.
      ::setenv("SPECULA_STORE_FS", st.fs, 1);
      ::setenv("SPECULA_STORE_QGROUPS", st.qgroups, 1);
      core::SessionManagerOptions o;
      o.state_dir = dir + "/" + st.fs + (st.qgroups[0] != '\0' ? "-full" : "");
      st.mgr = Must(core::SessionManager::Open(o), "open");
      const auto& info = st.mgr->store().fs_info();
      std::printf("%-20s store %s, quotas %s\n", st.name, info.type.c_str(),
                  std::string(store::btrfs::QuotaModeName(info.quota)).c_str());
      core::CreateSessionRequest req;
      req.policy = policy::DefaultPolicy();
      st.session = Must(st.mgr->CreateSession(req), "create").record.id;
      // A few layers under the head, as in a session under way.
      for (int i = 0; i < 3; ++i) Must(st.mgr->Commit(st.session, "echo " + std::to_string(i) + " > /tmp/l"), "warm up");
    }
    ::unsetenv("SPECULA_STORE_FS");
    ::unsetenv("SPECULA_STORE_QGROUPS");
    for (int i = 0; i < iters; ++i) {
      // Rotate the order so no store always runs first.
      for (size_t k = 0; k < stores.size(); ++k) {
        Store& st = stores[(k + static_cast<size_t>(i)) % stores.size()];
        auto t0 = Clock::now();
        Must(st.mgr->Commit(st.session, "echo " + std::to_string(i) + " > /tmp/f"), "commit small");
        st.ms["commit small action"].push_back(Ms(t0, Clock::now()));
        t0 = Clock::now();
        auto r = Must(st.mgr->Commit(st.session, "mkdir -p /tmp/m" + std::to_string(i) + " && cd /tmp/m" +
                                                     std::to_string(i) + " && for j in $(seq 2000); do echo $j > f$j; done"),
                      "commit many");
        if (r.exit_code != 0) std::fprintf(stderr, "many files: exit %d\n", r.exit_code);
        st.ms["commit writing 2000 files"].push_back(Ms(t0, Clock::now()));
        t0 = Clock::now();
        std::string b = Must(st.mgr->Speculate(st.session, "true"), "speculate");
        Must(st.mgr->WaitBranch(b, 120s), "wait");
        st.ms["fork (layered ckpt) -> done"].push_back(Ms(t0, Clock::now()));
        t0 = Clock::now();
        Must(st.mgr->DiscardBranch(b), "discard");
        st.ms["discard (done branch)"].push_back(Ms(t0, Clock::now()));
      }
    }
    std::printf("disk_limit_bench: %d iterations, state dirs under %s\n", iters, dir.c_str());
    for (const char* what :
         {"commit small action", "commit writing 2000 files", "fork (layered ckpt) -> done", "discard (done branch)"}) {
      double peer = At(stores[0].ms[what], 0.5);
      for (auto& st : stores) {
        auto& v = st.ms[what];
        std::printf("%-28s %-20s p50=%8.1f ms  p90=%8.1f ms  x%.2f\n", what, st.name, At(v, 0.5), At(v, 0.9),
                    peer > 0 ? At(v, 0.5) / peer : 0.0);
      }
    }
    for (auto& st : stores) {
      Must(st.mgr->DestroySession(st.session), "destroy");
      st.mgr.reset();  // unmounts its store
    }
  }
  Must(RemoveTree(dir), "cleanup");
  return 0;
}
