// Code that runs in a child after clone/fork, where nothing may allocate or
// take a lock (the runtime is multi-threaded): every string and table is
// prepared by the parent in these plain structs beforehand, and failures are
// reported with common/child_report.h. Two children use it:
//   - the sandbox's init (pid 1): builds the root, /dev, /proc, /sys, /run,
//     then execs the freestanding reaper of sandbox/init/;
//   - an action: joins the sandbox (setns through init's pidfd), drops
//     privileges, installs seccomp and execs bash.
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
  // The init program (sandbox/init/), written to init_path inside the
  // sandbox and exec'd as the last step.
  const unsigned char* init_program = nullptr;
  size_t init_program_size = 0;
  std::string init_path;
};

// Everything an action launcher needs, prepared in the parent.
struct ActionPlan {
  int init_pidfd = -1;
  std::vector<int> cgroup_fds;  // v1 cgroup.procs
  int cgroup2_dir = -1;         // for CLONE_INTO_CGROUP
  int stdout_fd = -1, stderr_fd = -1;
  const char* dev_null = "/dev/null";  // opened after entering the sandbox
  std::vector<char*> argv, envp;       // NULL-terminated
  const char* exe = "/bin/bash";
  PrivilegePlan priv;
  sock_fprog seccomp{};
  bool seccomp_listener = false;
  int listener_sock = -1;  // where the action sends its seccomp listener
  int report_fd = -1;
  int pid_fd = -1;         // the launcher writes the action's host pid here
};

// struct clone_args up to CLONE_ARGS_SIZE_VER2 (linux/sched.h clashes with <sched.h>).
inline constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;  // CLONE_INTO_CGROUP
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

// In the clone child (new pid/mnt/uts/ipc/net namespaces): never returns.
[[noreturn]] void RunInit(const InitPlan& plan);

// In a forked child of the runtime: enters the sandbox and forks the action
// as a sibling (CLONE_PARENT), writes its host pid to plan.pid_fd, _exits.
[[noreturn]] void LaunchAction(const ActionPlan& plan);

}  // namespace specula::sandbox
