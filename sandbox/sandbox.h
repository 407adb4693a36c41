// A sandbox: one isolated copy of a session's environment (DESIGN.md
// "branch"). CONTRACT between sandbox/ and its users (runtime, ebpf tests):
// names below keep their meaning; the implementation may add members.
//
// Layout on the host (all under spec.run_dir, owned by this object):
//   merged/   the overlay mount (lower = layers over base, upper = spec.upper_dir)
// Inside: pid, mount, uts, ipc, net and cgroup namespaces; root = merged via
// pivot_root; minimal /dev, /proc (sys knobs read-only), /sys read-only,
// private /run and /var/run, hostname from the policy; pid 1 is the
// sandbox's own init, which reaps orphans. Actions run as children of init's
// namespaces in their own session, with stdio that never points outside the
// sandbox, so whatever they leave running stays dumpable by CRIU.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"
#include "sandbox/device_filter.h"
#include "sandbox/userns.h"

namespace specula::sandbox {

// Shell state carried from one action to the next, as data: enough to
// re-create the shell in a new sandbox without a live bash.
struct ShellState {
  std::string cwd = "/";
  uint32_t umask = 022;
  std::string env;        // `export -p`-style text: exported variables
  std::string variables;  // `declare -p` text of unexported, non-special variables
  std::string functions;  // `declare -f` text
  std::string aliases;    // `alias -p` text
  std::string options;    // `set +o` and `shopt -p` text
  // A stable text form (for storing in a checkpoint) and its inverse.
  std::string Serialize() const;
  static Result<ShellState> Parse(const std::string& text);
  // Checks what Run relies on: absolute cwd, umask <= 0777, no NUL bytes,
  // options made only of `set -o/+o X` and `shopt -s/-u X` lines.
  Status Validate() const;
  bool operator==(const ShellState&) const = default;
};

struct ActionResult {
  int exit_code = -1;   // -1 if killed by a signal
  int signal = 0;       // terminating signal, 0 if none
  bool timed_out = false;
  std::string stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;
  std::chrono::milliseconds duration{0};
  // False when the action ended without writing its shell state (it replaced
  // the EXIT trap, exec'd another program, or was killed): the sandbox keeps
  // the state it had before the action.
  bool state_captured = false;
};

// Output of a running action, handed over as the action writes it
// (Sandbox::Run's on_output): which stream, and bytes not handed over
// before. Called on the thread that called Run, never in a forked child;
// the bytes are only valid during the call. Together the calls for a
// stream hand over exactly the capped text the result carries.
enum class OutputStream { kStdout, kStderr };
using OutputSink = std::function<void(OutputStream stream, std::string_view data)>;

// A syscall held by a defer rule (seccomp user notification).
struct DeferredCall {
  uint64_t id;           // seccomp notification id
  pid_t pid;             // in the sandbox's pid namespace as the kernel reports it
  std::string syscall;   // name
  uint64_t args[6];
  std::chrono::system_clock::time_point since;
};

// An extra mount from the host (lossy paths, read-only binds).
struct BindMount {
  std::string host_path;     // resolved by the caller without following symlinks
  std::string sandbox_path;  // absolute path inside
  bool read_only = true;
};

struct SandboxSpec {
  std::string base = "/";             // lowest layer: the base directory
  std::vector<std::string> layers;    // sealed layer dirs, lowest first, above base
  std::string upper_dir;              // private, writable; must exist and be empty or a prior upper
  std::string work_dir;               // overlay workdir on the same fs as upper_dir
  std::string run_dir;                // private scratch dir for this sandbox (merged/ etc.)
  std::string name;                   // unique; names the cgroup ("specula-<name>")
  policy::Policy policy;              // what the sandbox allows (resources, seccomp, network, paths)
  std::vector<BindMount> binds;       // extra binds (lossy paths are rw binds)
  std::string cgroup_parent;          // empty: "specula" under each hierarchy's root
  ShellState shell;                   // initial shell state
  // The user namespace (policy.sandbox.user_namespace, the default): the
  // host ids of the sandbox's ids 0..count-1, and a namespace carrying that
  // mapping for the idmapped layer mounts (sandbox/userns.h). Null: Create
  // makes one for this sandbox; the runtime shares one among all.
  IdRange ids;
  std::shared_ptr<const MappingUserns> idmap;
  // The device allowlist program (device_filter.h). Null: Create loads one
  // for this sandbox; the runtime loads one per daemon and shares it.
  std::shared_ptr<const DeviceFilterProgram> device_filter;
  // Host paths no branch may see, masked wherever they appear in its root
  // (the runtime's state dir, its socket's directory): an empty read-only
  // tmpfs over a directory, /dev/null over a file.
  std::vector<std::string> masked_host_paths;
  // Where binds are staged for a CRIU restore in a user namespace (see
  // RestoreTarget): a path whose every directory the namespace's root may
  // search (0711), since CRIU's restored task opens them from inside it and
  // run_dir is below the state dir (0700 root). Unique to this sandbox;
  // created and removed by it; its parent must exist, mode 0711 up to `/`.
  // Empty, or no user namespace: run_dir/binds.
  std::string restore_stage_dir;
};

// What the runtime's CRIU driver needs to restore a process tree into a
// prepared (but not yet started) sandbox: see Sandbox::CreateRestored.
struct RestoreTarget {
  std::string root;                        // merged overlay dir to pass as `criu restore --root`
  std::vector<std::string> cgroup_paths;   // the sandbox's cgroup dirs (v2 first) to place tasks in
  // `--external mnt[KEY]:HOSTPATH` pairs the image's external mounts need.
  // For SandboxSpec.binds HOSTPATH is a staging mount of the host's object
  // under run_dir/binds/ or restore_stage_dir (sandbox/host_bind.h), valid
  // only during the callback.
  std::vector<std::pair<std::string, std::string>> external_mounts;
};

class Sandbox {
 public:
  // Validates spec (in the parent), builds the overlay and cgroup, starts init
  // in new namespaces. Everything created is undone if a later step fails.
  static Result<std::unique_ptr<Sandbox>> Create(const SandboxSpec& spec);

  // Like Create, but instead of starting a fresh init, calls `restore` with
  // the prepared root; it must bring up the process tree (criu restore -d)
  // and return the host pid of the restored namespace init, which the sandbox
  // then adopts.
  static Result<std::unique_ptr<Sandbox>> CreateRestored(
      const SandboxSpec& spec, const std::function<Result<pid_t>(const RestoreTarget&)>& restore);

  virtual ~Sandbox() = default;  // destroys (kills, unmounts, removes) if not yet destroyed

  // Runs `bash` with the current shell state, the command, and captures the
  // new shell state. timeout 0: the policy's action timeout. On timeout the
  // action's process group is killed and the sandbox lives on. on_output,
  // when set, gets the output while the action runs (OutputSink above).
  virtual Result<ActionResult> Run(const std::string& command,
                                   std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                   const OutputSink& on_output = {}) = 0;

  virtual const ShellState& shell_state() const = 0;
  virtual void set_shell_state(ShellState s) = 0;

  virtual Status Freeze() = 0;
  virtual Status Thaw() = 0;
  // The cgroup's CPU weight (1..10000): a sandbox prepared ahead at the
  // speculative weight is raised to the policy's when a commit runs on it.
  virtual Status SetCpuWeight(uint32_t weight) = 0;

  // Host pid of the sandbox's init (pid 1 inside): what `criu dump -t` takes.
  virtual pid_t init_pid() const = 0;
  // True when processes other than init are alive in the sandbox.
  virtual Result<bool> HasLiveProcesses() const = 0;
  // Tasks (threads) of the sandbox, init included: what resources.pids caps.
  virtual Result<uint64_t> TaskCount() const = 0;
  // The external mounts a CRIU dump must name (`--external mnt[PATH]:KEY`):
  // pairs of (path inside the sandbox, key).
  virtual std::vector<std::pair<std::string, std::string>> ExternalMounts() const = 0;
  // The host uid and gid that root inside the sandbox maps to (the id
  // range's base), or nullopt when the sandbox shares the host's user
  // namespace. CRIU's restored tasks open their images as this owner.
  virtual std::optional<std::pair<uid_t, gid_t>> mapped_root() const = 0;
  // The merged root on the host, and the cgroup2 directory (for eBPF).
  virtual const std::string& root() const = 0;
  virtual const std::string& cgroup2_path() const = 0;
  virtual uint64_t cgroup2_id() const = 0;

  // Deferred syscalls currently held; release lets them proceed.
  virtual std::vector<DeferredCall> PendingDeferred() const = 0;
  virtual Status ReleaseDeferred() = 0;
  // Releases what is held and lets every later deferred call through at
  // once: the action is authorised (a commit's own run, a promoted hit).
  virtual Status AuthoriseDeferred() = 0;

  // Kills every process, unmounts, removes the cgroups and run_dir (not the
  // upper dir: the caller owns it). Idempotent.
  virtual Status Destroy() = 0;

  // The route out of the network namespace for network modes allowlist and
  // lossy (sandbox/net_uplink.h); a no-op in the other modes. Not started by
  // Create: the caller starts it only once something enforces the policy's
  // egress rules on the sandbox's cgroup (the eBPF egress guard), because
  // the sandbox itself does not filter destinations. Without slirp4netns it
  // logs and leaves loopback only.
  virtual Status StartUplink() = 0;
  // Removes it, before a CRIU dump (which cannot checkpoint its tap device);
  // a restored sandbox needs StartUplink again.
  virtual Status DropUplink() = 0;
};

}  // namespace specula::sandbox
