// apply_bench: promote to base (ApplyUpper: validate, stage, fsync, journal,
// rename, keep pre-images) of N small files + a few big ones, next to its
// peer `cp -a upper/. base/ && sync -f base` on the same files, interleaved
// in one run. Prints p50/p90 of each and the ratio apply/peer.
//
//   apply_bench [--small N] [--big N] [--big-mib M] [--runs R] [--dir /var/tmp]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/spawn.h"
#include "runtime/apply/apply.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[i];
}

void MakeTree(const std::string& root, int small, int big, int big_mib, char fill) {
  for (int i = 0; i < small; ++i) {
    std::string d = root + "/d" + std::to_string(i % 20);
    fs::create_directories(d);
    std::ofstream(d + "/f" + std::to_string(i)) << std::string(1024, fill);
  }
  fs::create_directories(root + "/big");
  std::string mib(1 << 20, fill);
  for (int i = 0; i < big; ++i) {
    std::ofstream f(root + "/big/b" + std::to_string(i));
    for (int m = 0; m < big_mib; ++m) f << mib;
  }
}

bool Run(const std::vector<std::string>& argv) {
  auto r = specula::Spawn({.argv = argv, .timeout = std::chrono::milliseconds(600000)});
  if (!r.ok() || !r->success()) {
    std::fprintf(stderr, "%s failed: %s\n", argv[0].c_str(),
                 r.ok() ? r->err.c_str() : r.error().ToString().c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int small = 1000, big = 4, big_mib = 8, runs = 7;
  std::string parent = "/var/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--small") small = std::atoi(argv[i + 1]);
    else if (a == "--big") big = std::atoi(argv[i + 1]);
    else if (a == "--big-mib") big_mib = std::atoi(argv[i + 1]);
    else if (a == "--runs") runs = std::atoi(argv[i + 1]);
    else if (a == "--dir") parent = argv[i + 1];
  }
  if (runs < 1) runs = 1;
  std::string tmpl = parent + "/specula-apply-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) { std::perror("mkdtemp"); return 1; }
  const std::string root = tmpl;
  // The upper: new content for every file. The template base: old content,
  // so every apply replaces existing files (the RENAME_EXCHANGE path).
  MakeTree(root + "/upper", small, big, big_mib, 'n');
  MakeTree(root + "/base-template", small, big, big_mib, 'o');
  if (!Run({"sync", "-f", root})) return 1;

  std::vector<double> apply_ms, peer_ms, perfile_ms, fresh_ms;
  for (int r = 0; r < runs; ++r) {
    std::string base = root + "/base" + std::to_string(r), peer = root + "/peer" + std::to_string(r);
    if (!Run({"cp", "-a", root + "/base-template", base})) return 1;
    if (!Run({"cp", "-a", root + "/base-template", peer})) return 1;
    if (!Run({"sync", "-f", root})) return 1;

    std::string base_pf = root + "/basepf" + std::to_string(r);
    if (!Run({"cp", "-a", root + "/base-template", base_pf})) return 1;
    if (!Run({"sync", "-f", root})) return 1;

    using Sync = specula::apply::ApplyOptions::Sync;
    auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    // Each measured action, then `sync -f` on the whole fs so the next one
    // starts without the previous one's dirty pages.
    std::string fresh = root + "/fresh" + std::to_string(r);
    auto apply_syncfs = [&]() -> bool {
      auto t0 = Clock::now();
      auto rep = specula::apply::ApplyUpper(
          root + "/upper", base, {.journal_dir = root + "/journal" + std::to_string(r), .sync = Sync::kSyncFs, .crash_at = -1});
      apply_ms.push_back(ms(t0, Clock::now()));
      if (!rep.ok()) { std::fprintf(stderr, "apply: %s\n", rep.error().ToString().c_str()); return false; }
      if (r == 0) {
        std::printf("files: %d small (1 KiB) + %d big (%d MiB); apply changed %llu, copied %llu bytes\n", small,
                    big, big_mib, static_cast<unsigned long long>(rep->changed),
                    static_cast<unsigned long long>(rep->bytes));
      }
      return Run({"sync", "-f", root});
    };
    auto apply_perfile = [&]() -> bool {
      auto t0 = Clock::now();
      auto rep = specula::apply::ApplyUpper(
          root + "/upper", base_pf, {.journal_dir = root + "/journalpf" + std::to_string(r), .sync = Sync::kPerFile, .crash_at = -1});
      perfile_ms.push_back(ms(t0, Clock::now()));
      if (!rep.ok()) { std::fprintf(stderr, "apply: %s\n", rep.error().ToString().c_str()); return false; }
      return Run({"sync", "-f", root});
    };
    auto peer_overwrite = [&]() -> bool {
      auto t0 = Clock::now();
      bool ok = Run({"cp", "-a", root + "/upper/.", peer}) && Run({"sync", "-f", peer});
      peer_ms.push_back(ms(t0, Clock::now()));
      return ok && Run({"sync", "-f", root});
    };
    auto peer_fresh = [&]() -> bool {
      auto t0 = Clock::now();
      bool ok = Run({"cp", "-a", root + "/upper", fresh}) && Run({"sync", "-f", fresh});
      fresh_ms.push_back(ms(t0, Clock::now()));
      return ok && Run({"sync", "-f", root});
    };
    // Alternate the order between runs so neither side always goes first.
    bool ok = (r % 2 == 0) ? apply_syncfs() && peer_overwrite() && apply_perfile() && peer_fresh()
                           : peer_fresh() && apply_perfile() && peer_overwrite() && apply_syncfs();
    if (!ok) return 1;
    fs::remove_all(base_pf);
    fs::remove_all(fresh);
    fs::remove_all(root + "/journalpf" + std::to_string(r));
    fs::remove_all(base);
    fs::remove_all(peer);
    fs::remove_all(root + "/journal" + std::to_string(r));
  }
  std::printf("%-34s p50 %8.1f ms  p90 %8.1f ms  (%d runs)\n", "ApplyUpper, one syncfs", Pct(apply_ms, 0.5),
              Pct(apply_ms, 0.9), runs);
  std::printf("%-34s p50 %8.1f ms  p90 %8.1f ms\n", "ApplyUpper, fsync per object", Pct(perfile_ms, 0.5),
              Pct(perfile_ms, 0.9));
  std::printf("%-34s p50 %8.1f ms  p90 %8.1f ms\n", "peer: cp -a over base + sync -f", Pct(peer_ms, 0.5),
              Pct(peer_ms, 0.9));
  std::printf("%-34s p50 %8.1f ms  p90 %8.1f ms\n", "peer: cp -a to new dir + sync -f", Pct(fresh_ms, 0.5),
              Pct(fresh_ms, 0.9));
  std::printf("ratio p50 vs cp-over-base: apply(syncfs) %.2f, apply(per-file) %.2f\n",
              Pct(apply_ms, 0.5) / Pct(peer_ms, 0.5), Pct(perfile_ms, 0.5) / Pct(peer_ms, 0.5));
  std::printf("ratio p50 vs cp-to-new-dir: apply(syncfs) %.2f, apply(per-file) %.2f\n",
              Pct(apply_ms, 0.5) / Pct(fresh_ms, 0.5), Pct(perfile_ms, 0.5) / Pct(fresh_ms, 0.5));
  fs::remove_all(root);
  return 0;
}
