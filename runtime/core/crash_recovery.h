// Reconciling a state dir with the kernel after a daemon crash (DESIGN.md
// contract 6). A SIGKILLed daemon leaves its branches' sandboxes running:
// their init was reparented to pid 1 and keeps its namespaces, cgroups and
// the overlay mounted under <state>/fs/branches/<id>/run. Before a new
// SessionManager touches branch directories it kills those processes, waits
// until they are gone, unmounts what they left and removes their cgroups.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"

namespace specula::core {

struct LeftoverReport {
  size_t processes_killed = 0;
  size_t mounts_removed = 0;
  size_t cgroups_removed = 0;
};

// Mount points (as /proc/self/mountinfo shows them, unescaped) strictly
// under `dir`, deepest first.
Result<std::vector<std::string>> MountsUnder(const std::string& dir);

// Processes outside this process's mount namespace whose mount table names a
// path under `dir` (a sandbox whose overlay was built from the state dir).
Result<std::vector<pid_t>> ForeignProcessesUsing(const std::string& dir);

// The existing cgroup directories (cgroup2 and every v1 hierarchy) of the
// sandbox named `name`, under "specula" or a daemon's instance parent
// ("specula/i-<hash>/specula-<name>").
std::vector<std::string> SandboxCgroupDirs(const std::string& name);

// Pids listed in the cgroup.procs of any of `dirs`.
std::vector<pid_t> PidsInCgroups(const std::vector<std::string>& dirs);

// Kills every process of the sandboxes `sandbox_names` (by cgroup) and every
// foreign process using `state_dir`, waits until they are gone, unmounts
// every mount under `branches_dir` (deepest first, detached) and removes the
// sandboxes' cgroups. Safe to run when nothing is left.
// `stage_root`, when given, is treated like `branches_dir` (binds staged
// for a CRIU restore, criu::CriuDriver::RestoreStageDir) and emptied.
Result<LeftoverReport> ReapLeftovers(const std::string& state_dir, const std::string& branches_dir,
                                     const std::vector<std::string>& sandbox_names,
                                     const std::string& stage_root = "");

// Kills only the foreign processes using `state_dir` (before the store is
// opened: they may hold the layer filesystem in another mount namespace).
Result<size_t> KillForeignUsers(const std::string& state_dir);

}  // namespace specula::core
