// `specula bench`: every corpus trajectory run with speculation off and on
// (k = 1..3; the built-in speculator (speculators/builtin.h) and synthetic
// oracle speculators, including the all-miss oracle p = 0 that bounds the
// overhead), on the same machine in the same run, against an Environment
// factory (the daemon for real figures).
// Reports per trajectory and overall: end-to-end time, saving %, hit rate,
// branches, wasted branch-seconds, and a losslessness check (every step's
// output and the final work-dir state equal to the speculation-off run).
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "agents/engine.h"
#include "agents/environment.h"
#include "agents/trajectory.h"
#include "speculators/model.h"

namespace specula::agents {

// Makes a fresh environment whose actions run in `workdir` (exported as $W,
// the current directory of every action). `speculative` is false for the
// speculation-off baseline.
using EnvironmentFactory = std::function<Result<std::unique_ptr<Environment>>(
    const Trajectory& trajectory, const std::string& workdir, bool speculative)>;

// The daemon (real figures): one session per run, base "/", setup commands
// exporting W and creating it.
EnvironmentFactory DaemonEnvironmentFactory(std::string socket_path, std::string policy);
// TEST ONLY: LocalSequentialEnvironment for the baseline and the copy-based
// SpeculativeLocalEnvironment for speculative runs (needs root and rsync).
EnvironmentFactory LocalTestEnvironmentFactory();

struct BenchOptions {
  std::string corpus_dir;              // empty: DefaultCorpusDir()
  std::vector<std::string> only;       // trajectory names; empty: all
  bool json = false;                   // machine-readable output
  bool include_steps = false;          // JSON: every run's per-step engine record
  double time_scale = 0.05;            // multiplies recorded think times
  std::vector<int> ks = {1, 2, 3};
  bool builtin = true;                 // built-in speculator runs
  // Its model; null: the shipped one (trained on real agents' trajectories,
  // never on this corpus).
  std::shared_ptr<const speculators::Model> builtin_model;
  // The agent id the built-in speculator is told (the shipped model has no
  // section for the corpus's author: it speculates as for an unknown agent
  // and learns the session online).
  std::string agent = "specula-corpus";
  // Also run the built-in speculator launching all k candidates, bypassing
  // the launch rule (shows its hit rate even when the rule declines); 0: skip.
  int builtin_launch_all_k = 3;
  // Also run the original n-gram speculator (leave-one-out on the corpus) at
  // these k, for comparison; empty: skip.
  std::vector<int> ngram_ks;
  std::vector<double> oracle_p = {0.5, 0.0};  // synthetic oracle runs (0 = all-miss)
  // Confidence the all-miss oracle claims, so branches are really launched
  // and the overhead bound is measured.
  double all_miss_claimed_confidence = 0.5;
  std::string work_root = "/tmp/specula-bench";
  EngineOptions engine;
  uint64_t seed = 1;
  EnvironmentFactory make_environment;  // required
  std::ostream* progress = nullptr;     // stderr when null
};

// Returns a process exit status: 0 all runs completed and lossless, 1 a run
// failed or a losslessness check failed, 2 bad options.
int BenchCommand(const BenchOptions& options, std::ostream& out);

// The command that prints a digest of the work dir's state (names, types,
// modes, owners, link targets, file contents; not times).
std::string StateDigestCommand();

}  // namespace specula::agents
