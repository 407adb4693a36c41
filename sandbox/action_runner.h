// Running one action in a live sandbox (Sandbox::Run): the per-action files
// on the sandbox's tmpfs, the launch plan and the launcher
// (sandbox/launcher/), the wait with the timeout and the output caps, and
// the shell state the action's EXIT trap wrote. docs/sandbox.md "Actions".
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "sandbox/child_setup.h"
#include "sandbox/defer_notifier.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_filter.h"

namespace specula::sandbox {

// The action's process: move-only, waited for through a pidfd; dropped
// unreaped, its whole process group is killed and reaped.
class ActionProcess {
 public:
  static Result<ActionProcess> Adopt(pid_t pid);
  ActionProcess(ActionProcess&& o) noexcept
      : pidfd_(std::move(o.pidfd_)), pid_(std::exchange(o.pid_, -1)), reaped_(o.reaped_), status_(o.status_) {}
  ActionProcess& operator=(ActionProcess&&) = delete;
  ActionProcess(const ActionProcess&) = delete;
  ~ActionProcess();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // Waits up to `timeout` (negative: forever); true once reaped, with its
  // status in *info (the same status on every later call).
  bool Wait(std::chrono::milliseconds timeout, siginfo_t* info);
  // SIGKILL to the action's process group, then waits until the group is
  // gone (its members are reaped by the sandbox's init).
  void KillGroup();

 private:
  ActionProcess(UniqueFd pidfd, pid_t pid) : pidfd_(std::move(pidfd)), pid_(pid) {}
  UniqueFd pidfd_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  siginfo_t status_{};
};

// What an action needs of its sandbox; borrowed, the sandbox outlives it.
struct ActionEnv {
  const SandboxSpec* spec = nullptr;
  int io_dir = -1;            // O_PATH fd of kIoDirInside, resolved inside the sandbox
  int init_pidfd = -1;
  std::vector<int> v1_procs_fds;
  int cgroup2_dir = -1;
  const SeccompProgram* seccomp = nullptr;
  const PrivilegePlan* priv = nullptr;
  int launcher = -1;          // sealed memfd of the launcher program
  DeferNotifier* notifier = nullptr;
  std::function<Result<bool>()> has_live_processes;
};

class ActionRunner {
 public:
  explicit ActionRunner(ActionEnv env) : env_(std::move(env)) {}
  // Runs `command` with `shell` as the starting state; `shell` becomes the
  // captured state when the action wrote one. One at a time (the caller
  // locks). on_output (may be empty) gets the output as it is written.
  Result<ActionResult> Run(ShellState& shell, const std::string& command, std::chrono::milliseconds timeout,
                           const OutputSink& on_output = {});
  // Closes the output files background jobs of earlier actions still hold.
  void DropKeptOutputs() { kept_outputs_.clear(); }

 private:
  Result<ActionProcess> Launch(int stdout_fd, int stderr_fd, UniqueFd* listener);

  ActionEnv env_;
  uint64_t seq_ = 0;
  // stdout/stderr files of earlier actions whose background jobs still hold
  // them: truncated at every Run so a chatty job cannot fill the tmpfs.
  std::vector<UniqueFd> kept_outputs_;
};

// The sealed plan a launcher reads (sandbox/launcher/launch_plan.h), in a
// memfd positioned at its start. Exposed for the unit test.
Result<UniqueFd> WriteLaunchPlan(const std::vector<std::string>& argv, const std::vector<std::string>& envp,
                                 const std::string& exe, const SeccompProgram& seccomp, const PrivilegePlan& priv,
                                 uint32_t setns_flags, bool user_namespace, size_t n_v1_cgroups);

// A sealed, executable memfd holding `bytes` (the launcher program).
Result<UniqueFd> SealedProgram(const char* name, const unsigned char* bytes, size_t size);

}  // namespace specula::sandbox
