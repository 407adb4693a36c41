// Environments that run actions with plain bash on this machine, without the
// daemon: for tests, for verifying the trajectory corpus, and for trying the
// engine before speculad is up. Neither is a sandbox: commands run as the
// calling user against the real filesystem, in a work directory.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agents/environment.h"

namespace specula::agents {

struct LocalEnvironmentOptions {
  std::string workdir;                 // cwd of every action; exported as $W
  std::vector<std::string> env_set;    // extra "K=V" for every action
  size_t output_cap = 1 << 20;
};

// Runs each committed command with `bash -c` in the work dir, one after the
// other. No speculation: Speculate fails, every commit is a miss. Each command
// starts a fresh bash in the work dir (no shell state is carried over), which
// is why corpus trajectories never rely on a previous `cd` or `export`.
class LocalSequentialEnvironment : public Environment {
 public:
  explicit LocalSequentialEnvironment(LocalEnvironmentOptions options);

  Result<BranchId> Speculate(const std::string& command, std::chrono::milliseconds timeout) override;
  Result<CommitResult> Commit(const std::string& command, std::chrono::milliseconds timeout) override;
  Status Abort() override { return Status::Ok(); }
  Result<std::optional<ActionOutcome>> PeekBranch(const BranchId& branch) override;
  std::string Name() const override { return "local-sequential"; }
  bool SupportsSpeculation() const override { return false; }

 private:
  LocalEnvironmentOptions options_;
};

// A TEST environment (never used for reported figures): speculation emulated
// with copies. A branch copies the work dir and runs its command in a private
// mount and pid namespace where the copy is bind-mounted over the work dir
// (so paths are the same as in a committed run), at nice 10 (the daemon uses
// the policy's cgroup cpu_weight instead). Promote syncs the copy back with
// `rsync -aH --checksum --delete`. Needs root (unshare, mount) and rsync. Limits: it
// cannot carry processes, so it refuses to speculate commands that start
// background processes, send signals (kill, pkill) or talk to loopback
// services (they would reach the committed path's server), and the branch
// namespace kills whatever a branch left running; and it does not track
// effects outside the work dir.
class SpeculativeLocalEnvironment : public Environment {
 public:
  // Branch copies live under `options.workdir` + ".branches".
  explicit SpeculativeLocalEnvironment(LocalEnvironmentOptions options);
  ~SpeculativeLocalEnvironment() override;
  SpeculativeLocalEnvironment(const SpeculativeLocalEnvironment&) = delete;
  SpeculativeLocalEnvironment& operator=(const SpeculativeLocalEnvironment&) = delete;

  Result<BranchId> Speculate(const std::string& command, std::chrono::milliseconds timeout) override;
  Result<CommitResult> Commit(const std::string& command, std::chrono::milliseconds timeout) override;
  Status Abort() override;
  Result<std::optional<ActionOutcome>> PeekBranch(const BranchId& branch) override;
  std::string Name() const override { return "local-speculative(test)"; }
  bool SupportsSpeculation() const override { return true; }

  // Whether this environment can run `command` as a branch (see class comment).
  static bool CanSpeculate(const std::string& command);

 private:
  struct Branch {
    std::string command;  // trimmed
    std::string dir;
    std::thread worker;
    bool done = false;
    bool discarded = false;  // set before killing: the worker must not start the command
    std::optional<Result<ActionOutcome>> outcome;
  };
  void RunBranch(Branch* branch, std::chrono::milliseconds timeout);
  // Marks every branch discarded and kills what runs. Discarded branches
  // cannot touch the work dir, so a commit does not wait for them: they are
  // joined and their copies deleted by Reap once finished (wait: right now).
  void DiscardAll(bool wait);
  void Reap(bool wait);
  void KillIfRunning(Branch& branch);

  LocalEnvironmentOptions options_;
  LocalSequentialEnvironment sequential_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  std::map<BranchId, std::unique_ptr<Branch>> branches_;
  std::vector<std::unique_ptr<Branch>> graveyard_;  // discarded, maybe still running
  int next_id_ = 1;
};

}  // namespace specula::agents
