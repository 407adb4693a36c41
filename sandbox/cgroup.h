// One sandbox's cgroups, on a pure cgroup2 host or on the v1+v2 hybrid
// (v1 controllers under /sys/fs/cgroup/<ctrl>, a controller-less cgroup2 at
// /sys/fs/cgroup/unified). A cgroup2 directory always exists (eBPF filters on
// its id); memory, pids and cpu limits go to whichever hierarchy holds the
// controller; freezing uses cgroup.freeze (a core cgroup2 file that needs no
// controller) and falls back to the v1 freezer.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "policies/policy.h"

namespace specula::sandbox {

class DeviceFilterProgram;  // device_filter.h

struct CgroupLayout {
  std::string v2_root;                       // cgroup2 mount point; empty if none
  std::map<std::string, std::string> v1;     // controller -> v1 mount point
  bool v2_has(const std::string& controller) const;
};

// Reads /proc/self/mountinfo.
Result<CgroupLayout> DetectCgroupLayout();
// The layout a mountinfo text describes (the first cgroup2 mount; v1
// mounts of memory, pids, cpu, freezer, devices). kUnavailable without a
// cgroup2 mount.
Result<CgroupLayout> ParseCgroupLayout(std::string_view mountinfo);

// The directory of `parent` (relative to each hierarchy root) in every
// hierarchy: the cgroup2 one first, then each distinct v1 mount.
std::vector<std::string> CgroupParentDirs(const CgroupLayout& layout, const std::string& parent);

// The directories above `parent` in every hierarchy, deepest first
// ("specula" for "specula/i-1234"): made on the way to it, removed after
// it while no one else uses them.
std::vector<std::string> CgroupParentAncestors(const CgroupLayout& layout, const std::string& parent);

// Removes `parent` (relative to each hierarchy root, as given to
// SandboxCgroup::Create) in every hierarchy where it exists and is empty:
// the owner of a cgroup parent gives it back when it closes. A directory
// that still holds sandboxes (EBUSY) stays and is reported; one already
// gone is fine. Then its ancestors go too, each only if empty: one that
// another instance (or anyone) still uses stays, silently. Creating under
// a parent makes the chain again when such a removal races it.
Status RemoveCgroupParent(const std::string& parent);

// Owns the directories; Remove() (or the destructor) deletes them once empty.
class SandboxCgroup {
 public:
  // parent: relative to each hierarchy root ("specula" when empty).
  // device_filter: the loaded allowlist to attach (one per daemon; a
  // program the kernel does not support attaches nothing).
  static Result<SandboxCgroup> Create(const std::string& parent, const std::string& name,
                                      const policy::Resources& limits,
                                      const DeviceFilterProgram& device_filter);
  // Adopts the same directories without setting limits again (restore path
  // creates them the same way; kept separate for clarity of intent).
  SandboxCgroup() = default;
  SandboxCgroup(SandboxCgroup&&) noexcept = default;
  SandboxCgroup& operator=(SandboxCgroup&&) noexcept;
  SandboxCgroup(const SandboxCgroup&) = delete;
  SandboxCgroup& operator=(const SandboxCgroup&) = delete;
  ~SandboxCgroup();

  const std::string& v2_path() const { return v2_path_; }
  uint64_t v2_id() const { return v2_id_; }
  // Every directory, cgroup2 first (what CRIU restore / tests need).
  std::vector<std::string> paths() const;
  // Open O_WRONLY fds of each cgroup.procs: a freshly forked child writes
  // "0" to each to join the sandbox without allocating.
  const std::vector<UniqueFd>& procs_fds() const { return procs_fds_; }
  // The same without the cgroup2 one: children enter cgroup2 with
  // clone3(CLONE_INTO_CGROUP, v2_dir_fd()), which avoids the slow cgroup2
  // migration (about 7 ms per write here).
  std::vector<int> v1_procs_fds() const;
  int v2_dir_fd() const { return v2_dir_.get(); }
  // Whether the BPF device allowlist is attached to the cgroup2 dir (the v1
  // devices controller's rules are written whenever it is mounted).
  bool device_filter() const { return device_filter_; }

  Status Freeze();
  Status Thaw();
  // Changes the CPU weight set at Create (1..10000, cgroup2's scale; v1's
  // cpu.shares scaled as Create does): a pooled branch sandbox is prepared
  // at the speculative weight and raised when a commit runs on it.
  Status SetCpuWeight(uint32_t weight);
  // Host pids in the sandbox's cgroup2 directory.
  Result<std::vector<pid_t>> Pids() const;
  // True when a process other than `except` is in the cgroup2 directory.
  // Cheap (one openat on the held directory fd, reads only until the first
  // other pid, no allocation) and exact: cgroup.procs lists thread-group
  // leaders with live threads, so exited zombies are not counted.
  Result<bool> HasProcessOtherThan(pid_t except) const;
  // Tasks (threads) in the cgroup2 directory: what the pids limit counts.
  Result<uint64_t> TaskCount() const;
  // SIGKILL to everything in the cgroup (cgroup.kill, or one by one).
  Status KillAll();
  // Removes the directories (waiting briefly for dying tasks). Idempotent.
  Status Remove();

 private:
  std::string v2_path_;
  uint64_t v2_id_ = 0;
  std::vector<std::string> v1_paths_;  // distinct v1 dirs (memory, pids, cpu, freezer)
  std::string v1_freezer_;
  std::string v1_cpu_;  // the v1 cpu dir when cgroup2 has no cpu controller
  std::vector<UniqueFd> procs_fds_;  // cgroup2 first
  UniqueFd v2_dir_;
  bool frozen_v1_ = false;
  bool device_filter_ = false;
  bool prune_parent_ = false;  // in the default parent, which goes with its last sandbox
};

}  // namespace specula::sandbox
