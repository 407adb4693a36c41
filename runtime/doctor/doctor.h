// `specula doctor [--json]`: what this machine's kernel and tools allow, found
// by real probes (unshare each namespace, mount an overlay, pivot_root,
// install seccomp filters, load a tiny eBPF program of each type, run
// `criu check`, arm a hardware breakpoint), never by reading configs.
// docs/doctor.md lists every check, what its status means and what to do.
//
// The CLI calls DoctorCommand. The hardware-breakpoint probe it runs lives
// beside the CRIU driver, which needs its answer (runtime/criu/breakpoint_probe.h).
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/paths.h"
#include "runtime/criu/breakpoint_probe.h"

namespace specula {

enum class CheckStatus {
  kOk,        // works as the design needs
  kDegraded,  // missing or slower, but specula works without it (a feature is
              // switched off or a workaround is applied)
  kMissing,   // absent; if the check is required, specula cannot run here
};
std::string_view CheckStatusName(CheckStatus status);  // "ok" | "degraded" | "missing"

struct DoctorCheck {
  std::string name;     // stable id: "kernel", "namespace.pid", "ebpf.fentry", ...
  CheckStatus status = CheckStatus::kMissing;
  bool required = true; // a required check that is missing makes the doctor fail
  std::string reason;   // one line: what the probe saw
  std::string action;   // one line: what to do (for ok: empty)
  std::chrono::milliseconds duration{0};
};

struct DoctorReport {
  std::vector<DoctorCheck> checks;  // in a fixed order (docs/doctor.md)
  std::chrono::milliseconds duration{0};
  // True unless a required check is missing.
  bool ok() const;
  // nullptr if there is no check of that name.
  const DoctorCheck* Find(std::string_view name) const;
};

struct DoctorOptions {
  std::chrono::milliseconds probe_timeout{2000};       // per forked kernel probe
  std::chrono::milliseconds breakpoint_timeout{1000};  // for the SIGTRAP to arrive
  std::chrono::milliseconds criu_timeout{10000};       // per CRIU invocation
  std::string criu_path;                               // empty: CriuPath()
  std::string scratch_dir = "/tmp";                    // parent of the probes' temp dirs
  std::string state_dir = kDefaultStateDir;            // whose store `store.fs` reports
  // The doctor always re-probes breakpoints and refreshes this cache (empty:
  // don't write one). See criu::CriuNeedsNoBreakpoints.
  std::string breakpoint_cache = criu::kBreakpointCachePath;
};

// Runs every check (well under a second here). Never fails: a probe that
// cannot run is itself reported as a check's reason.
DoctorReport RunDoctor(const DoctorOptions& options);

// A table for people: NAME STATUS REASON, an indented "-> action" line under
// each check that is not ok, and a summary line.
std::string FormatDoctorTable(const DoctorReport& report);

// {"ok": bool, "duration_ms": n, "checks": [{"name", "status", "required",
//  "reason", "action", "duration_ms"}...]}
nlohmann::json DoctorJson(const DoctorReport& report);

// `specula doctor [--json]`: runs with default options, writes the table or
// the JSON (one line) to out. Returns the exit status: 0 if no required check
// is missing, else 1.
int DoctorCommand(bool json, std::ostream& out);

}  // namespace specula
