// Code that runs in a child after clone/fork, where nothing may allocate or
// take a lock (the runtime is multi-threaded): every string and table is
// prepared by the parent in these plain structs beforehand, and failures are
// reported with common/child_report.h. Two children use it:
//   - the sandbox's init (pid 1): builds the root, /dev, /proc, /sys, /run,
//     then execs the freestanding reaper of sandbox/init/;
//   - an action's launcher: moves exactly the fds of the launch plan onto
//     their slots, closes all others and execs the launcher program
//     (sandbox/launcher/), which joins the sandbox and execs bash.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace specula::sandbox {

// One step of the in-sandbox mount plan (paths are inside the new root,
// except sources under the old root, which sits at /proc until detached).
struct MountStep {
  enum class Kind {
    kMkdir,        // target, mode (EEXIST is fine)
    kTouch,        // create an empty file at target (for file bind targets)
    kSymlink,      // source -> target
    kMount,        // mount(source, target, fstype, flags, data)
    kBind,         // bind source on target (recursive); read_only remounts it ro
    kReadOnly,     // bind target on itself read-only; skipped if absent
    kMask,         // empty ro tmpfs over a dir, /dev/null over a file; skipped if absent
    kTmpfsIfDir,   // tmpfs on target only if it is a real directory (not a symlink)
    kDetach,       // umount2(target, MNT_DETACH)
    kAttach,       // move_mount the detached tree `fd` (host_bind.h) onto target, then close fd
    kAwaitParent,  // tell the parent (InitPlan.sync_fd) and wait until it says go on
  };
  Kind kind;
  std::string source, target, fstype, data;
  unsigned long flags = 0;
  unsigned mode = 0755;
  bool read_only = false;
  bool optional = false;  // a missing target is not an error
  int fd = -1;            // kAttach: detached mount tree inherited from the parent
  std::string step;       // what to report on failure (fits ChildFailure::step)
};

// What the prepared process needs to drop privileges before exec/loop.
struct PrivilegePlan {
  uint64_t cap_mask = 0;  // bounding/effective/permitted set to keep
  int last_cap = 40;
  uint64_t nofile = 4096;
};

// Everything init needs, prepared in the parent.
struct InitPlan {
  std::string merged;          // overlay mount (host path), becomes /

  std::vector<int> cgroup_fds;  // v1 cgroup.procs to write "0" into (cgroup2: CLONE_INTO_CGROUP)
  std::vector<MountStep> steps;
  std::string hostname;
  bool loopback_up = true;
  PrivilegePlan priv;
  int report_fd = -1;           // write end of the report pipe
  // User namespace: init was cloned into a new one and first waits for the
  // parent to write its id maps (a byte, or EOF, on go_fd), then becomes
  // uid/gid 0 there.
  bool user_namespace = false;
  int go_fd = -1;
  // kAwaitParent: a socketpair end; init writes one byte and reads one.
  int sync_fd = -1;
  // The filter init runs under (the actions' baseline and policy rules;
  // deferred calls fail with ENOSYS, init makes none).
  sock_fprog seccomp{};
  // Handed to the init program as fd 3: it writes one byte there once it is
  // non-dumpable, and only then may anything else enter the sandbox.
  int ready_fd = -1;
  // The parent's ends of those pipes, inherited over clone: closed first,
  // so a parent that dies leaves init reading EOF instead of blocking.
  int parent_ends[3] = {-1, -1, -1};
  // The init program (sandbox/init/), written to init_path inside the
  // sandbox and exec'd as the last step.
  const unsigned char* init_program = nullptr;
  size_t init_program_size = 0;
  std::string init_path;
};

// What the launcher child needs (sandbox/launcher/launch_plan.h has the slots).
struct LauncherFds {
  int launcher = -1;       // sealed memfd of the launcher program, exec'd with execveat
  int plan = -1;           // sealed memfd with the specula_launch_plan
  int report = -1, pid = -1, init_pidfd = -1, cgroup2 = -1, stdout_fd = -1, stderr_fd = -1, listener = -1;
  std::vector<int> v1_cgroups;
};

// struct clone_args up to CLONE_ARGS_SIZE_VER2 (linux/sched.h clashes with <sched.h>).
inline constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;  // CLONE_INTO_CGROUP
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

// In the clone child (new pid/mnt/uts/ipc/net namespaces): never returns.
[[noreturn]] void RunInit(const InitPlan& plan);

// In a forked child of the runtime: places fds on the launcher's slots,
// closes every other fd, execs the launcher (which forks the action as the
// runtime's child and exits).
[[noreturn]] void ExecLauncher(const LauncherFds& fds);

}  // namespace specula::sandbox
