// The agent side's only view of the runtime: an Environment runs shell
// actions, speculatively (branches) or authoritatively (commits). The engine
// (engine.h) is written against this interface alone, so it runs unchanged
// against the daemon (DaemonEnvironment), plain bash (LocalSequentialEnvironment)
// or a scripted fake in tests.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/api/match.h"
#include "runtime/api/wire.h"

namespace specula::agents {

using BranchId = std::string;

// The result of one action, as the actor sees it.
struct ActionOutcome {
  int exit_code = -1;
  int signal = 0;
  std::string stdout_text;
  std::string stderr_text;
  bool truncated = false;
  double duration_ms = 0;  // the action's own run time

  // Equality of what an agent observes (duration excluded): the losslessness
  // check compares outcomes with this.
  bool SameObservable(const ActionOutcome& o) const {
    return exit_code == o.exit_code && signal == o.signal &&
           stdout_text == o.stdout_text && stderr_text == o.stderr_text &&
           truncated == o.truncated;
  }
};

// The daemon's action.commit reply (api::CommitResponse) as the engine sees
// it, with the result in the actor's terms.
struct CommitResult {
  bool hit = false;    // a branch with the same command was promoted
  BranchId branch;     // that branch ("" on a miss)
  ActionOutcome outcome;
  double saved_ms = 0;  // action run time hidden by the hit (daemon's estimate)
  std::string head;     // the session's new head checkpoint
  std::vector<api::LossyEffect> lossy_effects;  // effects that escaped the sandbox
  std::vector<std::string> flags;               // e.g. "nondeterministic_input"
};

class Environment {
 public:
  virtual ~Environment() = default;

  // Starts a branch from the head running `command`; returns at once.
  virtual Result<BranchId> Speculate(const std::string& command,
                                     std::chrono::milliseconds timeout) = 0;
  // The authoritative action: promotes a branch with the same command (hit)
  // or discards all branches and runs it (miss).
  virtual Result<CommitResult> Commit(const std::string& command,
                                      std::chrono::milliseconds timeout) = 0;
  // Discards every branch of the head.
  virtual Status Abort() = 0;
  // A branch's result once it has finished (nullopt while it runs). The
  // engine uses it to pre-launch the actor's next call before the commit.
  virtual Result<std::optional<ActionOutcome>> PeekBranch(const BranchId& branch) = 0;
  // Short description for reports ("daemon:/run/specula/speculad.sock").
  virtual std::string Name() const = 0;
  // True for environments that really run branches (the engine skips
  // speculation otherwise).
  virtual bool SupportsSpeculation() const = 0;
};

// Commands match when equal after trimming ASCII whitespace at both ends:
// the daemon's default rule (DESIGN.md "The contract" 2), from the contract
// itself so the two cannot drift apart.
using api::TrimCommand;

}  // namespace specula::agents
