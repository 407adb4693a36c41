// Runs a helper program (criu, bpftool, bash, cp) to completion: argv exec'd
// directly (no shell), a chosen environment, a timeout after which its whole
// process group is killed, stdout and stderr captured with a cap. The one
// spawn wrapper of the project: CRIU, the doctor and the benchmarks use it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace specula {

struct SpawnOptions {
  std::vector<std::string> argv;          // argv[0] is the program path (PATH is searched)
  std::vector<std::string> env_set;       // "K=V" added to (or replacing in) the inherited env
  bool clear_env = false;                 // start from an empty environment
  std::string cwd;                        // empty: inherit
  std::string stdin_data;                 // written to the child's stdin, then closed
  std::chrono::milliseconds timeout{60000};
  size_t output_cap = 1 << 20;            // per stream
  // Called in the child between fork and exec. Must be async-signal-safe:
  // no allocation, no locks. Returns 0 or an errno.
  int (*child_setup)(void* arg) = nullptr;
  void* child_setup_arg = nullptr;
};

struct SpawnResult {
  int exit_code = -1;     // -1 when killed by a signal
  int term_signal = 0;    // 0 unless killed by a signal
  bool timed_out = false;
  std::string out, err;
  bool out_truncated = false, err_truncated = false;
  std::chrono::milliseconds duration{0};
  bool success() const { return !timed_out && term_signal == 0 && exit_code == 0; }
};

// Errors only for failure to start (program missing, fork failure); a program
// that runs and fails is a SpawnResult with a non-zero exit.
Result<SpawnResult> Spawn(const SpawnOptions& opts);

// The last `max_lines` lines of text that look like errors (contain "Error"
// or "error"), or the last lines otherwise: for quoting a tool's own words.
std::string ErrorLines(const std::string& text, size_t max_lines = 5);

}  // namespace specula
