// The Sandbox implementation: a fresh init started with clone3 into new
// namespaces (a user namespace of its own by default) or a CRIU-restored
// one adopted by pid; actions started through the launcher
// (sandbox/action_runner.h). See docs/sandbox.md for the design.
#include <algorithm>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "common/child_report.h"
#include "common/files.h"
#include "common/safe_fs.h"
#include "common/unique_fd.h"
#include "sandbox/action_runner.h"
#include "sandbox/capabilities.h"
#include "sandbox/cgroup.h"
#include "sandbox/child_setup.h"
#include "sandbox/defer_notifier.h"
#include "sandbox/host_bind.h"
#include "sandbox/index_link_up.h"
#include "sandbox/net_uplink.h"
#include "sandbox/overlay.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox_plan.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/userns.h"

namespace specula::sandbox {

// sandbox/init/sandbox_init.c and sandbox/launcher/launcher.c, embedded at
// build time.
extern const unsigned char kSandboxInit[];
extern const size_t kSandboxInit_size;
extern const unsigned char kSandboxLauncher[];
extern const size_t kSandboxLauncher_size;

namespace {

Result<std::pair<UniqueFd, UniqueFd>> Pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  return std::make_pair(UniqueFd(p[0]), UniqueFd(p[1]));
}

// Waits for a process to exit: reaps it if it is our child, else polls its
// pidfd (a CRIU-restored init is reparented away from us).
bool WaitExit(int pidfd, std::chrono::milliseconds timeout, siginfo_t* info) {
  pollfd p{pidfd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  siginfo_t si{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED) != 0 && errno == EINTR) {
  }
  if (info) *info = si;
  return true;
}

class LinuxSandbox final : public Sandbox {
 public:
  explicit LinuxSandbox(SandboxSpec spec) : spec_(std::move(spec)), shell_(spec_.shell) {}
  ~LinuxSandbox() override {
    Status st = Destroy();
    if (!st.ok()) spdlog::warn("sandbox {}: destroy: {}", spec_.name, st.ToString());
  }

  // Validation, run dir, overlay, cgroups, seccomp program: everything both
  // Create and CreateRestored need before a process exists.
  Status Prepare();
  Status StartInit();
  Status AdoptRestored(pid_t pid);
  Status ReexecRestoredInit();
  Status Adopt();  // opens the io dir, starts the defer notifier

  Result<ActionResult> Run(const std::string& command, std::chrono::milliseconds timeout,
                           const OutputSink& on_output) override;
  const ShellState& shell_state() const override { return shell_; }
  void set_shell_state(ShellState s) override { shell_ = std::move(s); }
  Status Freeze() override {
    if (cgroup_.v2_path().empty()) return Gone();
    return cgroup_.Freeze();
  }
  Status Thaw() override {
    if (cgroup_.v2_path().empty()) return Gone();
    return cgroup_.Thaw();
  }
  Status SetCpuWeight(uint32_t weight) override {
    if (cgroup_.v2_path().empty()) return Gone();
    return cgroup_.SetCpuWeight(weight);
  }
  pid_t init_pid() const override { return init_pid_; }
  Result<bool> HasLiveProcesses() const override;
  Result<uint64_t> TaskCount() const override {
    if (cgroup_.v2_path().empty()) return Gone();
    return cgroup_.TaskCount();
  }
  std::vector<std::pair<std::string, std::string>> ExternalMounts() const override {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : externals_) out.emplace_back(e.sandbox_path, e.key);
    return out;
  }
  const std::string& root() const override { return merged_; }
  const std::string& cgroup2_path() const override { return cgroup_.v2_path(); }
  uint64_t cgroup2_id() const override { return cgroup_.v2_id(); }
  std::vector<DeferredCall> PendingDeferred() const override { return notifier_.Pending(); }
  Status ReleaseDeferred() override { return notifier_.ReleaseAll(); }
  Status AuthoriseDeferred() override { return notifier_.Authorise(); }
  Status Destroy() override;
  Status StartUplink() override;
  Status DropUplink() override;

  // What `criu restore` needs. The caller's binds are staged first under
  // run_dir/binds/ (host_bind.h: StagedBind says why); UnstageBinds removes
  // them once the restore is over.
  Result<RestoreTarget> PrepareRestoreTarget();
  void UnstageBinds();

 private:
  Error Gone() const { return Error(Code::kFailedPrecondition, "sandbox " + spec_.name + " is destroyed"); }
  bool userns() const { return spec_.policy.sandbox.user_namespace; }
  std::string BindStageDir() const;
  std::optional<std::pair<uid_t, gid_t>> mapped_root() const override {
    if (!userns()) return std::nullopt;
    return std::pair<uid_t, gid_t>{spec_.ids.host_base, spec_.ids.host_base};
  }
  // clone3 of init; in a user namespace also its id maps and, when init
  // asks, the binds it may not attach itself.
  Status CloneInit(InitPlan& plan, int sync_parent_end);

  SandboxSpec spec_;
  ShellState shell_;
  std::string merged_;
  bool created_run_dir_ = false, created_merged_ = false;
  OverlayMount overlay_;
  UniqueFd launcher_;  // sealed memfd of the launcher program
  SandboxCgroup cgroup_;
  SeccompProgram seccomp_;
  PrivilegePlan priv_;
  std::vector<ExternalMount> externals_;
  // spec.binds as detached trees cloned in the host's namespaces; handed to
  // init (inherited over clone3) and dropped once init has attached them.
  std::vector<HostBindTree> bind_trees_;
  std::vector<StagedBind> staged_binds_;  // only while a CRIU restore runs
  UniqueFd init_pidfd_;
  pid_t init_pid_ = -1;
  UniqueFd io_dir_;  // O_PATH fd of the sandbox's action tmpfs
  DeferNotifier notifier_;
  std::optional<ActionRunner> runner_;  // from Adopt on
  std::mutex run_mu_;      // one action at a time; teardown waits for it
  std::mutex destroy_mu_;
  std::atomic<bool> dying_{false};
  bool destroyed_ = false;
  NetUplink uplink_;  // allowlist/lossy network modes: the route out
};

Status LinuxSandbox::Prepare() {
  SPECULA_TRY(ValidateSpec(spec_));
  // A writable host bind (a lossy path) is the host's own directory, and the
  // sandbox's root is host root on it (the bind's idmap, or no user
  // namespace): a setuid bit or a file capability set there works on the
  // host for anyone. Unless the policy lets a promote carry them, a sandbox
  // with such a bind can set neither, anywhere (the seccomp rules cannot tell
  // the bind's files from the overlay's).
  const bool writable_bind =
      std::any_of(spec_.binds.begin(), spec_.binds.end(), [](const BindMount& b) { return !b.read_only; });
  const bool guard_setuid = writable_bind && !spec_.policy.promotion.allow_setuid;
  SPECULA_ASSIGN_OR_RETURN(seccomp_, BuildSeccompProgram(spec_.policy.syscalls, guard_setuid));
  SPECULA_ASSIGN_OR_RETURN(priv_.cap_mask, CapabilityMask(spec_.policy.sandbox.capabilities));
  if (writable_bind && !spec_.policy.promotion.allow_file_caps) {
    SPECULA_ASSIGN_OR_RETURN(int setfcap, CapabilityFromName("CAP_SETFCAP"));
    priv_.cap_mask &= ~(uint64_t{1} << setfcap);
  }
  priv_.last_cap = LastCapability();
  priv_.nofile = spec_.policy.resources.nofile;
  SPECULA_ASSIGN_OR_RETURN(launcher_, SealedProgram("specula-launch", kSandboxLauncher, kSandboxLauncher_size));
  // What the runtime shares among sandboxes, made here when it did not.
  if (userns() && !spec_.idmap) {
    SPECULA_ASSIGN_OR_RETURN(spec_.idmap, MappingUserns::Create(spec_.ids));
  }
  if (!spec_.device_filter) {
    SPECULA_ASSIGN_OR_RETURN(spec_.device_filter, DeviceFilterProgram::Load());
  }
  const int idmap_fd = userns() ? spec_.idmap->fd() : -1;
  externals_ = BuildExternalMounts(spec_);
  // Before anything is created: this is also where a symlink anywhere on a
  // bind's host path is refused.
  for (const auto& b : spec_.binds) {
    SPECULA_ASSIGN_OR_RETURN(auto tree, CloneHostBind(b.host_path, b.read_only, idmap_fd));
    bind_trees_.push_back(std::move(tree));
  }

  if (::mkdir(spec_.run_dir.c_str(), 0700) == 0) {
    created_run_dir_ = true;
  } else if (errno != EEXIST) {
    return Error::FromErrno("mkdir run_dir " + spec_.run_dir);
  }
  merged_ = spec_.run_dir + "/merged";
  if (::mkdir(merged_.c_str(), 0755) != 0) return Error::FromErrno("mkdir " + merged_);
  created_merged_ = true;
  OverlayMountOptions opts;
  opts.idmap = userns() ? spec_.idmap.get() : nullptr;
  // A branch's upper is discarded or promoted, and promote syncs the store
  // itself (sandbox/overlay.h sync_on_unmount): destroy need not write back
  // the whole filesystem.
  opts.sync_on_unmount = false;
  // Layers given by fd show in mountinfo as "/" (no host path): the source
  // names the upper dir, so crash recovery (and an operator) still finds a
  // sandbox rooted in a state dir by reading its mount table.
  opts.source = spec_.upper_dir.empty() ? std::string("specula") : spec_.upper_dir;
  SPECULA_ASSIGN_OR_RETURN(overlay_, OverlayMount::Mount(SandboxOverlayLayers(spec_), merged_, opts));
  // The sandbox's proc is mounted on merged/proc, and pivot_root parks the
  // old root there: it must be a real directory.
  struct stat st {};
  std::string proc = merged_ + "/proc";
  if (::lstat(proc.c_str(), &st) != 0) {
    std::optional<ScopedFsIds> ids;
    if (userns()) ids.emplace(spec_.ids);
    if (::mkdir(proc.c_str(), 0555) != 0) return Error::FromErrno("mkdir " + proc);
  } else if (!S_ISDIR(st.st_mode)) {
    return Error(Code::kInvalidArgument, "/proc in the sandbox's root is not a directory");
  }
  SPECULA_ASSIGN_OR_RETURN(cgroup_, SandboxCgroup::Create(spec_.cgroup_parent, spec_.name,
                                                          spec_.policy.resources, *spec_.device_filter));
  return Status::Ok();
}

Status LinuxSandbox::StartInit() {
  InitPlan plan;
  plan.merged = merged_;

  plan.cgroup_fds = cgroup_.v1_procs_fds();
  std::vector<int> tree_fds;
  for (const auto& t : bind_trees_) tree_fds.push_back(t.tree.get());
  plan.steps = BuildMountSteps(spec_, tree_fds);
  plan.hostname = spec_.policy.sandbox.hostname;
  plan.loopback_up = spec_.policy.network.mode != policy::NetworkMode::kNone;
  plan.priv = priv_;
  plan.seccomp = seccomp_.fprog();
  plan.user_namespace = userns();
  plan.init_program = kSandboxInit;
  plan.init_program_size = kSandboxInit_size;
  plan.init_path = std::string(kIoDirInside) + "/init";
  SPECULA_ASSIGN_OR_RETURN(auto report, Pipe());
  SPECULA_ASSIGN_OR_RETURN(auto ready, Pipe());
  SPECULA_ASSIGN_OR_RETURN(auto go, Pipe());
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return Error::FromErrno("socketpair");
  UniqueFd sync_child(sv[0]), sync_parent(sv[1]);
  plan.report_fd = report.second.get();
  plan.ready_fd = ready.second.get();
  plan.go_fd = go.first.get();
  plan.sync_fd = sync_child.get();
  plan.parent_ends[0] = go.second.get();
  plan.parent_ends[1] = sync_parent.get();
  plan.parent_ends[2] = ready.first.get();

  int pidfd = -1;
  CloneArgs args{};
  args.flags = CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
               kCloneIntoCgroup | (userns() ? CLONE_NEWUSER : 0);
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.cgroup = static_cast<uint64_t>(cgroup_.v2_dir_fd());
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) RunInit(plan);  // never returns
  if (pid < 0) return Error::FromErrno("clone3 sandbox init");
  init_pidfd_.Reset(pidfd);
  init_pid_ = static_cast<pid_t>(pid);
  report.second.Reset();
  ready.second.Reset();
  go.first.Reset();
  sync_child.Reset();

  auto fail = [&](Error e) -> Status {
    ::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), SIGKILL, nullptr, 0);
    WaitExit(init_pidfd_.get(), std::chrono::milliseconds(5000), nullptr);
    init_pidfd_.Reset();
    init_pid_ = -1;
    bind_trees_.clear();
    return e;
  };
  if (userns()) {
    Status maps = WriteIdMaps(init_pid_, spec_.ids);
    if (!maps.ok()) return fail(std::move(maps).error());
    if (::write(go.second.get(), "G", 1) != 1) return fail(Error::FromErrno("start sandbox init"));
    // Init asks for its binds once their mount points exist (kAwaitParent).
    bool wants_binds = std::any_of(plan.steps.begin(), plan.steps.end(),
                                   [](const MountStep& m) { return m.kind == MountStep::Kind::kAwaitParent; });
    if (wants_binds) {
      char c = 0;
      if (::read(sync_parent.get(), &c, 1) == 1 && c == 'B') {
        std::vector<BindTarget> targets;
        for (size_t i = 0; i < spec_.binds.size(); ++i) {
          if (!IsProcSysTarget(spec_.binds[i].sandbox_path)) {
            targets.push_back({bind_trees_[i].tree.get(), spec_.binds[i].sandbox_path});
          }
        }
        Status attached = AttachInto(init_pid_, targets);
        if (!attached.ok()) return fail(std::move(attached).error().Context("sandbox " + spec_.name));
        if (::write(sync_parent.get(), "G", 1) != 1) return fail(Error::FromErrno("resume sandbox init"));
      }
      // Else init failed before: its report says why.
    }
  }
  go.second.Reset();
  Status st = ReadChildReport(report.first.get(), "start sandbox init");
  bind_trees_.clear();  // attached (or init failed): our clones are not needed
  if (!st.ok()) {
    Error e = std::move(st).error();
    if (e.sys_errno() == ELOOP) {
      e.WithHint("a symlink in the sandbox's tree (its upper dir or a layer) is on the way to a mount target; "
                 "targets are never followed through symlinks: remove the link or move the bind");
    }
    return fail(std::move(e));
  }
  // The init program is non-dumpable before it says so: only then may
  // anything else enter the sandbox.
  char r = 0;
  ssize_t n;
  do {
    n = ::read(ready.first.get(), &r, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || r != 'R') return fail(Error(Code::kInternal, "sandbox init exited before it was ready"));
  // Then EOF: init has closed its end too, so from here on it holds no fd
  // of ours (init writes, then closes; only the close ends the read).
  do {
    n = ::read(ready.first.get(), &r, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 0) return fail(Error(Code::kInternal, "sandbox init wrote more than its ready byte"));
  return Adopt();
}

// Binds wait for CRIU here: in a user namespace CRIU's restored task opens
// them from inside it, so the path must be searchable by its root (an
// unprivileged id on the host): 0711 directories, named by no listing.
std::string LinuxSandbox::BindStageDir() const {
  if (userns() && !spec_.restore_stage_dir.empty()) return spec_.restore_stage_dir;
  return spec_.run_dir + "/binds";
}

Result<RestoreTarget> LinuxSandbox::PrepareRestoreTarget() {
  RestoreTarget t;
  t.root = merged_;
  t.cgroup_paths = cgroup_.paths();
  for (const auto& e : externals_) t.external_mounts.emplace_back(e.key, e.host_path);
  if (bind_trees_.empty()) return t;
  const std::string dir = BindStageDir();
  const bool searchable = dir != spec_.run_dir + "/binds";  // its parent is the runtime's (0711)
  if (::mkdir(dir.c_str(), searchable ? 0711 : 0700) != 0) return Error::FromErrno("mkdir " + dir);
  if (searchable && ::chmod(dir.c_str(), 0711) != 0) return Error::FromErrno("chmod " + dir);
  // The bind externals are the last entries, in spec order (BuildExternalMounts).
  const size_t first = t.external_mounts.size() - bind_trees_.size();
  for (size_t i = 0; i < bind_trees_.size(); ++i) {
    auto staged = StagedBind::Attach(std::move(bind_trees_[i]), dir + "/" + std::to_string(i));
    if (!staged.ok()) {
      UnstageBinds();
      return std::move(staged).error();
    }
    t.external_mounts[first + i].second = staged->path();
    staged_binds_.push_back(std::move(staged).value());
  }
  bind_trees_.clear();
  return t;
}

void LinuxSandbox::UnstageBinds() {
  staged_binds_.clear();
  bind_trees_.clear();
  const std::string dir = BindStageDir();
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("sandbox {}: rmdir {}: {}", spec_.name, dir, std::strerror(errno));
  }
}

Status LinuxSandbox::AdoptRestored(pid_t pid) {
  if (pid <= 0) return Error(Code::kInvalidArgument, "restore callback returned pid " + std::to_string(pid));
  init_pidfd_.Reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!init_pidfd_) return Error::FromErrno("pidfd_open restored init " + std::to_string(pid));
  init_pid_ = pid;
  // Put every task of the restored pid namespace into the sandbox's cgroups
  // (a no-op when the restore already did).
  char link[64];
  auto ns_of = [&](const std::string& p) {
    ssize_t n = ::readlink(("/proc/" + p + "/ns/pid").c_str(), link, sizeof(link) - 1);
    return n > 0 ? std::string(link, n) : std::string();
  };
  std::string init_ns = ns_of(std::to_string(pid));
  if (init_ns.empty()) return Error::FromErrno("read pid namespace of restored init");
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return Error::FromErrno("opendir /proc");
  std::vector<std::string> members;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    if (ns_of(e->d_name) == init_ns) members.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& m : members) {
    for (const auto& fd : cgroup_.procs_fds()) {
      if (::write(fd.get(), m.data(), m.size()) < 0 && errno != ESRCH) {
        return Error::FromErrno("move restored task " + m + " into the sandbox cgroup");
      }
    }
  }
  if (userns()) SPECULA_TRY(ReexecRestoredInit());
  return Adopt();
}

// CRIU made the restored init's memory from the host's user namespace; for
// a non-dumpable process that is the namespace whose CAP_SYS_PTRACE guards
// it, and CRIU's next dump of this tree (which looks at it from inside the
// sandbox's user namespace) would be refused. Init execs itself again on
// SIGUSR1 (init/sandbox_init.c) and shows our nonce in its cmdline once it
// has: from then on it is exactly a freshly started init.
Status LinuxSandbox::ReexecRestoredInit() {
  uint64_t nonce = 0;
  if (::getrandom(&nonce, sizeof(nonce), 0) != static_cast<ssize_t>(sizeof(nonce))) {
    return Error::FromErrno("getrandom");
  }
  siginfo_t info{};
  info.si_signo = SIGUSR1;
  info.si_code = SI_QUEUE;
  info.si_pid = ::getpid();
  info.si_uid = ::getuid();
  info.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(nonce));
  if (::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), SIGUSR1, &info, 0) != 0) {
    return Error::FromErrno("signal restored init to exec again");
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(nonce));
  const std::string want = std::string("specula-init") + '\0' + hex + '\0';
  const std::string cmdline = "/proc/" + std::to_string(init_pid_) + "/cmdline";
  // A wall-clock bound, not a count of 1 ms sleeps: on a loaded 2-core box
  // the exec took over 2 s once (two fuzzers beside a full test run), and
  // each sleep can last far longer than asked. Polls fast at first (the
  // exec usually takes well under a millisecond), then every 10 ms; stops
  // at once if init died instead.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0;; ++i) {
    auto text = ReadTextFile(cmdline, 256);
    if (text.ok() && *text == want) return Status::Ok();
    pollfd pfd{init_pidfd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0) {
      return Error(Code::kUnavailable, "restored init of " + spec_.name + " exited instead of exec'ing again")
          .WithHint("its image may predate this version of specula");
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(i < 100 ? 1 : 10));
  }
  return Error(Code::kUnavailable, "restored init of " + spec_.name + " did not exec again within 10 s")
      .WithHint("its image may predate this version of specula, or the host is overloaded");
}

Status LinuxSandbox::Adopt() {
  UniqueFd root(::open(("/proc/" + std::to_string(init_pid_) + "/root").c_str(),
                       O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::FromErrno("open root of sandbox init");
  // The sandbox controls everything below its root: resolve inside it only.
  SPECULA_ASSIGN_OR_RETURN(io_dir_, OpenInRoot(root.get(), kIoDirInside + 1, O_PATH | O_DIRECTORY));
  // The pid could have been reused between pidfd and /proc lookups.
  if (::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), 0, nullptr, 0) != 0) {
    return Error::FromErrno("sandbox init exited during start");
  }
  if (seccomp_.has_defer) SPECULA_TRY(notifier_.Start());
  ActionEnv env;
  env.spec = &spec_;
  env.io_dir = io_dir_.get();
  env.init_pidfd = init_pidfd_.get();
  env.v1_procs_fds = cgroup_.v1_procs_fds();
  env.cgroup2_dir = cgroup_.v2_dir_fd();
  env.seccomp = &seccomp_;
  env.priv = &priv_;
  env.launcher = launcher_.get();
  env.notifier = &notifier_;
  env.has_live_processes = [this] { return HasLiveProcesses(); };
  runner_.emplace(std::move(env));
  return Status::Ok();
}

Status LinuxSandbox::StartUplink() {
  const auto mode = spec_.policy.network.mode;
  if (mode != policy::NetworkMode::kAllowlist && mode != policy::NetworkMode::kLossyEgress) return Status::Ok();
  if (uplink_.running()) return Status::Ok();
  auto up = NetUplink::Start(init_pid_);
  if (up.ok()) {
    uplink_ = std::move(*up);
    return Status::Ok();
  }
  // Less reach is the safe side: without slirp4netns the branch keeps
  // loopback only, as in mode "loopback".
  if (up.error().code() == Code::kUnavailable) {
    spdlog::warn("sandbox {}: network mode '{}': no route out: {}", spec_.name, policy::ToString(mode),
                 up.error().ToString());
    return Status::Ok();
  }
  return std::move(up).error().Context("sandbox " + spec_.name);
}

Status LinuxSandbox::DropUplink() {
  uplink_.Stop();
  return Status::Ok();
}

Result<bool> LinuxSandbox::HasLiveProcesses() const {
  if (cgroup_.v2_path().empty()) return Gone();
  // Every process of the sandbox is in its cgroup2 directory (init and
  // actions enter it with CLONE_INTO_CGROUP; nothing inside can leave: the
  // cgroup namespace is rooted there and cgroupfs is not mounted inside).
  return cgroup_.HasProcessOtherThan(init_pid_);
}

Result<ActionResult> LinuxSandbox::Run(const std::string& command, std::chrono::milliseconds timeout,
                                       const OutputSink& on_output) {
  std::lock_guard<std::mutex> lock(run_mu_);
  if (destroyed_ || dying_.load() || !init_pidfd_ || !runner_) return Gone();
  auto r = runner_->Run(shell_, command, timeout, on_output);
  if (!r.ok()) r.Context("sandbox " + spec_.name + ": run action");
  return r;
}

Status LinuxSandbox::Destroy() {
  std::lock_guard<std::mutex> dlock(destroy_mu_);
  if (destroyed_) return Status::Ok();
  dying_.store(true);
  Status result;
  auto keep = [&](Status st) {
    if (!st.ok()) {
      spdlog::warn("sandbox {}: destroy: {}", spec_.name, st.ToString());
      if (result.ok()) result = std::move(st);
    }
  };
  uplink_.Stop();
  // Kill first (without the run lock: a running action must die so Run returns).
  if (!cgroup_.v2_path().empty()) keep(cgroup_.Thaw());
  if (init_pidfd_) ::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), SIGKILL, nullptr, 0);
  if (!cgroup_.v2_path().empty()) keep(cgroup_.KillAll());
  if (init_pidfd_ && !WaitExit(init_pidfd_.get(), std::chrono::milliseconds(10000), nullptr)) {
    keep(Error(Code::kDeadlineExceeded, "sandbox init did not exit within 10 s of SIGKILL"));
  }
  notifier_.Stop();

  std::lock_guard<std::mutex> rlock(run_mu_);
  UnstageBinds();
  if (runner_) runner_->DropKeptOutputs();
  runner_.reset();
  io_dir_.Reset();
  init_pidfd_.Reset();
  launcher_.Reset();
  spec_.idmap.reset();  // the mapping namespace's fd, when no one else shares it
  spec_.device_filter.reset();  // the device program's fd, likewise
  if (!cgroup_.v2_path().empty()) {
    for (int i = 0; i < 2000; ++i) {
      auto pids = cgroup_.Pids();
      if (!pids.ok() || pids->empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  keep(cgroup_.Remove());
  // Nothing runs in the sandbox any more: its upper dir is final but for
  // the aliases index=on only links up lazily (see LinkUpIndexedAliases).
  if (overlay_.mounted()) keep(LinkUpIndexedAliases(spec_, merged_).Context("sandbox " + spec_.name));
  Status unmounted = overlay_.Unmount();
  keep(unmounted);
  // Never remove anything under merged unless the overlay is gone: the
  // directory would otherwise be the sandbox's view of the base.
  if (unmounted.ok()) {
    if (created_merged_ && ::rmdir(merged_.c_str()) != 0 && errno != ENOENT) {
      keep(Error::FromErrno("rmdir " + merged_));
    }
    if (created_run_dir_ && ::rmdir(spec_.run_dir.c_str()) != 0 && errno != ENOENT) {
      keep(Error::FromErrno("rmdir " + spec_.run_dir));
    }
  }
  destroyed_ = true;
  return result;
}

}  // namespace

Result<std::unique_ptr<Sandbox>> Sandbox::Create(const SandboxSpec& spec) {
  auto sb = std::make_unique<LinuxSandbox>(spec);
  Status st = sb->Prepare();
  if (st.ok()) st = sb->StartInit();
  if (!st.ok()) return std::move(st.Context("create sandbox " + spec.name)).error();
  return std::unique_ptr<Sandbox>(std::move(sb));
}

Result<std::unique_ptr<Sandbox>> Sandbox::CreateRestored(
    const SandboxSpec& spec, const std::function<Result<pid_t>(const RestoreTarget&)>& restore) {
  auto sb = std::make_unique<LinuxSandbox>(spec);
  Status st = sb->Prepare();
  if (st.ok()) {
    auto target = sb->PrepareRestoreTarget();
    if (target.ok()) {
      auto pid = restore(*target);
      // The restored mounts hold their own references to the bound objects.
      sb->UnstageBinds();
      st = pid.ok() ? sb->AdoptRestored(*pid) : pid.status();
    } else {
      st = target.status();
    }
  }
  if (!st.ok()) return std::move(st.Context("restore sandbox " + spec.name)).error();
  return std::unique_ptr<Sandbox>(std::move(sb));
}

}  // namespace specula::sandbox
