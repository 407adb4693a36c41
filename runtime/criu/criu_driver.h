// Drives CRIU (common/paths.h CriuPath()) to dump a sandbox's process tree
// into a checkpoint's image dir and to restore it into a new sandbox root.
// Every run: argv through common/spawn.h with a timeout, a verbose log file
// kept next to the images, CRIU_FAULT=130 when hardware breakpoints do not
// work (ENVIRONMENT.md), and CRIU in a private mount namespace whose /run is
// a long-lived tmpfs owned by the driver, so CRIU's kernel-feature cache
// (/run/criu.kdat, only written to tmpfs) survives between calls.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace specula {
struct SpawnOptions;
struct SpawnResult;
}  // namespace specula

namespace specula::criu {

struct CriuOptions {
  std::string criu_path;  // empty: CriuPath()
  // CRIU_FAULT=130: CRIU's "no hardware breakpoints" switch. Default from
  // $SPECULA_CRIU_FAULT ("0" off, anything else on), else from
  // the breakpoint probe (breakpoint_probe.h, cached per boot).
  bool no_breakpoints = DefaultNoBreakpoints();
  std::chrono::milliseconds timeout{30000};
  // Directory for the driver's private kdat tmpfs; empty: no tmpfs (CRIU
  // re-probes the kernel each call).
  std::string kdat_dir;

  static bool DefaultNoBreakpoints();
};

struct DumpRequest {
  pid_t pid = 0;                  // host pid of the tree's root (the sandbox's init)
  std::string image_dir;          // created if missing; gets dump.log
  // (path inside the sandbox, key) for each bind mount from outside.
  std::vector<std::pair<std::string, std::string>> external_mounts;
  // Keep the tree running after the dump (default: CRIU kills it, because
  // the runtime destroys the sandbox right after checkpointing it).
  bool leave_running = false;
  // The tree lives in a user namespace: its restored tasks open some images
  // after entering it, so the image dir becomes readable to them
  // (criu_driver.cpp: OpenImagesToRestoredTasks says why that widens nothing).
  bool in_user_namespace = false;
};

struct DumpResult {
  std::chrono::milliseconds duration{0};
  uint64_t image_bytes = 0;
};

struct RestoreRequest {
  std::string image_dir;   // read only: several restores of one image may run at once
  std::string work_dir;    // private to this restore: log and pidfile go here
  std::string root;        // --root: the new sandbox's merged overlay dir
  // (key, host path) for each external mount of the image.
  std::vector<std::pair<std::string, std::string>> external_mounts;
  std::vector<std::string> cgroup_paths;  // unused by CRIU itself; kept for --cgroup-root
  uint64_t image_bytes = 0;  // the image's size as its dump reported it: counted only (CriuCounters)
};

struct RestoreResult {
  pid_t pid = 0;  // host pid of the restored tree's root
  std::chrono::milliseconds duration{0};
};

// What one driver has done since it was created (speculad's metrics,
// docs/operations.md): every Dump and Restore call, however it ended.
struct CriuCounters {
  uint64_t dumps = 0, dump_failures = 0;
  uint64_t restores = 0, restore_failures = 0;
  uint64_t dumped_bytes = 0;    // image bytes the successful dumps wrote
  uint64_t restored_bytes = 0;  // image bytes the successful restores read (RestoreRequest::image_bytes)
  double dump_seconds = 0, restore_seconds = 0;  // wall time of all calls, failed ones included
};

class CriuDriver {
 public:
  // Mounts the kdat tmpfs (if opts.kdat_dir is set). Fails if CRIU is not
  // executable.
  static Result<std::unique_ptr<CriuDriver>> Create(CriuOptions opts);
  ~CriuDriver();
  CriuDriver(const CriuDriver&) = delete;
  CriuDriver& operator=(const CriuDriver&) = delete;

  // Both are safe to call from several threads at once.
  Result<DumpResult> Dump(const DumpRequest& req) const;
  Result<RestoreResult> Restore(const RestoreRequest& req) const;
  CriuCounters counters() const;

  const CriuOptions& options() const { return opts_; }

  // `criu check` run as Dump and Restore run CRIU (same namespace, same /run):
  // CRIU's own summary ("Looks good."), or why it failed.
  Result<std::string> Check() const;
  // CRIU's kernel-feature cache is in the driver's tmpfs: its calls after
  // the first skip the kernel probe (tens of ms each). False without a tmpfs.
  bool KernelFeaturesCached() const;

  // Where a restore's external binds should be staged (empty: anywhere).
  // CRIU runs with the kdat tmpfs as its /run, so a host path below the
  // state dir (0700) would be unreachable to a restored task in a user
  // namespace, which opens the binds from inside it: this directory is on
  // that tmpfs, mode 0711, and Restore hands CRIU its /run/... spelling.
  // Nothing below the state dir is reachable by host users either way.
  std::string RestoreStageDir() const;

 private:
  explicit CriuDriver(CriuOptions opts) : opts_(std::move(opts)) {}
  std::vector<std::string> Env() const;
  // Runs CRIU as every call does: the driver's environment and timeout, in
  // its own mount namespace with the kdat tmpfs as /run, dying with the
  // runtime; `cgroup_procs` (NULL-terminated, may be null): cgroups it
  // joins first (a restore's tasks inherit them).
  Result<SpawnResult> RunCriu(SpawnOptions so, const char* const* cgroup_procs = nullptr) const;

  Result<DumpResult> DumpOnce(const DumpRequest& req) const;
  Result<RestoreResult> RestoreOnce(const RestoreRequest& req) const;

  CriuOptions opts_;
  bool kdat_mounted_ = false;
  // CriuCounters, kept as atomics: Dump and Restore are const and run on
  // several workers at once. Durations in microseconds.
  struct Atomics {
    std::atomic<uint64_t> dumps{0}, dump_failures{0}, restores{0}, restore_failures{0};
    std::atomic<uint64_t> dumped_bytes{0}, restored_bytes{0}, dump_us{0}, restore_us{0};
  };
  mutable Atomics counts_;
};

}  // namespace specula::criu
