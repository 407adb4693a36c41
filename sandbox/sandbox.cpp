// The Sandbox implementation: a fresh init started with clone3 into new
// namespaces (or a CRIU-restored one adopted by pid), actions entered with
// setns through init's pidfd. See docs/sandbox.md for the design.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
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
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/child_report.h"
#include "common/unique_fd.h"
#include "sandbox/action_script.h"
#include "sandbox/capabilities.h"
#include "sandbox/cgroup.h"
#include "sandbox/child_setup.h"
#include "sandbox/defer_notifier.h"
#include "sandbox/host_bind.h"
#include "sandbox/net_uplink.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox_plan.h"
#include "sandbox/seccomp_filter.h"

namespace specula::sandbox {

// sandbox/init/sandbox_init.c, embedded at build time.
extern const unsigned char kSandboxInit[];
extern const size_t kSandboxInit_size;

namespace {

constexpr size_t kMaxStateBytes = 64u << 20;
// In the sandbox's action tmpfs (kIoDirInside); see RunLocked.
constexpr const char* kActionScriptName = "action.sh";

// The overlay mounted on the host at <run_dir>/merged.
class OverlayMount {
 public:
  OverlayMount() = default;
  OverlayMount(const OverlayMount&) = delete;
  OverlayMount& operator=(const OverlayMount&) = delete;
  ~OverlayMount() {
    Status st = Unmount();
    if (!st.ok()) spdlog::warn("sandbox: {}", st.ToString());
  }
  bool mounted() const { return !target_.empty(); }
  // work_dir: the overlay's workdir (options name it too).
  Status Mount(const std::string& target, const std::string& options, const std::string& work_dir) {
    int rc = ::mount("overlay", target.c_str(), "overlay", MS_NOSUID, options.c_str());
    // EBUSY: a lower layer is still marked in use as the upper dir of an
    // overlay that is gone from our namespace but not yet from the kernel.
    // A layer is the sealed upper of a destroyed branch; a process that
    // copied the host's mount table while that branch was mounted (CRIU's
    // private namespace, another sandbox being set up) keeps its overlay
    // alive until it drops the copy, a few ms to a CRIU run later. Wait for
    // that instead of failing the fork (seen ~1 in 300 commits under load).
    for (int i = 0; rc != 0 && errno == EBUSY && i < 150; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      rc = ::mount("overlay", target.c_str(), "overlay", MS_NOSUID, options.c_str());
    }
    if (rc != 0 && errno == ESTALE) {
      // index=on ties <work>/index to the upper dir it was made with; a work
      // dir reused with a new upper (e.g. emptied and recreated) is refused.
      // Its entries are of no use then: Destroy links up every alias the
      // index held before unmounting (LinkUpIndexedAliases). Retry once
      // without it.
      std::error_code ec;
      if (std::filesystem::remove_all(work_dir + "/index", ec) > 0 && !ec) {
        spdlog::warn("overlay on {}: dropped the stale index of work dir {}", target, work_dir);
        rc = ::mount("overlay", target.c_str(), "overlay", MS_NOSUID, options.c_str());
      } else {
        errno = ESTALE;
      }
    }
    if (rc != 0) {
      const bool stale = errno == ESTALE;
      Error e = Error::FromErrno("mount overlay on " + target);
      // index=on records the upper's lower root in the upper dir and checks it.
      if (stale) e.WithHint("the upper dir was used before over a different lower layer stack");
      if (e.sys_errno() == EBUSY) {
        e.WithHint("a lower layer is still the upper dir of an overlay held by another mount namespace "
                   "(a process that ran `unshare -m` while a branch was mounted); see dmesg");
      }
      return e;
    }
    target_ = target;
    return Status::Ok();
  }
  Status Unmount() {
    if (target_.empty()) return Status::Ok();
    for (int i = 0; i < 50; ++i) {
      if (::umount2(target_.c_str(), UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT) {
        target_.clear();
        return Status::Ok();
      }
      if (errno != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Still referenced (e.g. a process on the host has its cwd inside): detach.
    if (::umount2(target_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return Error::FromErrno("unmount " + target_);
    }
    target_.clear();
    return Status::Ok();
  }

 private:
  std::string target_;
};

// Opens rel below root without following any symlink (the sandbox owns
// everything below its root).
UniqueFd OpenBeneath(int root, const std::string& rel, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return UniqueFd(static_cast<int>(::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof(how))));
}

// Regular files below dir (relative paths, "a/b"), filtered by keep(stat).
template <typename Keep>
std::vector<std::pair<std::string, struct stat>> FilesBelow(const std::string& dir, Keep keep) {
  std::vector<std::pair<std::string, struct stat>> out;
  std::error_code ec;
  namespace fs = std::filesystem;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !keep(st)) continue;
    out.emplace_back(it->path().lexically_relative(dir).string(), st);
  }
  return out;
}

// The overlay is mounted with index=on so that writing one name of a
// hard-linked lower file keeps its other names linked: the copy goes to
// <work>/index and the other names resolve to it. But only names actually
// written are linked into the upper dir, and the index (in the work dir) is
// dropped, so once the upper is sealed as a layer the other names would
// show the old lower file again. Before unmounting, every such alias found
// in the sandbox's layers is opened for writing through the overlay, which
// makes overlayfs link it up into the upper dir (no data copied, content and
// times unchanged). Names in the base are not searched: that walk would cost
// O(base); links created by actions live in layers.
Status LinkUpIndexedAliases(const SandboxSpec& spec, const std::string& merged) {
  std::set<ino_t> indexed;  // upper-fs inodes of the index entries
  for (const auto& [rel, st] : FilesBelow(spec.work_dir + "/index", [](const struct stat&) { return true; })) {
    indexed.insert(st.st_ino);
  }
  if (indexed.empty()) return Status::Ok();
  UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::FromErrno("open " + merged);
  auto merged_stat = [&](const std::string& rel) -> std::optional<struct stat> {
    UniqueFd f = OpenBeneath(root.get(), rel, O_PATH);
    struct stat st {};
    if (!f || ::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return st;
  };
  std::set<std::pair<dev_t, ino_t>> targets;  // overlay inodes with an indexed upper
  for (const auto& [rel, st] : FilesBelow(spec.upper_dir, [&](const struct stat& s) {
         return indexed.count(s.st_ino) != 0;
       })) {
    if (auto m = merged_stat(rel)) targets.emplace(m->st_dev, m->st_ino);
  }
  for (const auto& layer : spec.layers) {
    for (const auto& [rel, st] : FilesBelow(layer, [](const struct stat& s) { return s.st_nlink > 1; })) {
      struct stat up {};
      if (::lstat((spec.upper_dir + "/" + rel).c_str(), &up) == 0) continue;  // already in the upper
      auto m = merged_stat(rel);
      if (!m) continue;
      // Linked up when another name of it was written, or when names were
      // added or removed (index=on tracks the overlay's link count in the
      // index; the sealed layer must carry it as real links).
      if (targets.count({m->st_dev, m->st_ino}) == 0 && m->st_nlink == st.st_nlink) continue;
      if (!OpenBeneath(root.get(), rel, O_WRONLY | O_NONBLOCK)) {
        return Error::FromErrno("link up hard link " + rel);
      }
    }
  }
  return Status::Ok();
}

std::string RandomHex(size_t bytes) {
  unsigned char buf[32];
  bytes = std::min(bytes, sizeof(buf));
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(buf + got, bytes - got, 0);
    if (n > 0) got += n;
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(kHex[buf[i] >> 4]);
    out.push_back(kHex[buf[i] & 15]);
  }
  return out;
}

Result<std::pair<UniqueFd, UniqueFd>> Pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  return std::make_pair(UniqueFd(p[0]), UniqueFd(p[1]));
}

Status WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::FromErrno("write");
    off += n;
  }
  return Status::Ok();
}

// Reads at most cap bytes of a file the action wrote; reports truncation.
void ReadCapped(int fd, uint64_t cap, std::string& out, bool& truncated) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  uint64_t size = static_cast<uint64_t>(st.st_size);
  truncated = size > cap;
  out.resize(std::min(size, cap));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, got);
    if (n <= 0) break;
    got += n;
  }
  out.resize(got);
}

UniqueFd RecvFd(int sock) {
  char dummy;
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  if (::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0) return UniqueFd();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return UniqueFd();
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
  return UniqueFd(fd);
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
  Status Adopt();  // opens the io dir, starts the defer notifier

  Result<ActionResult> Run(const std::string& command, std::chrono::milliseconds timeout) override;
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
  pid_t init_pid() const override { return init_pid_; }
  Result<bool> HasLiveProcesses() const override;
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
  Result<ActionResult> RunLocked(const std::string& command, std::chrono::milliseconds timeout);

  SandboxSpec spec_;
  ShellState shell_;
  std::string merged_;
  bool created_run_dir_ = false, created_merged_ = false;
  OverlayMount overlay_;
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
  std::mutex run_mu_;      // one action at a time; teardown waits for it
  std::mutex destroy_mu_;
  std::atomic<bool> dying_{false};
  bool destroyed_ = false;
  uint64_t action_seq_ = 0;
  // stdout/stderr files of earlier actions whose background jobs still hold
  // them: truncated at every Run so a chatty job cannot fill the tmpfs.
  std::vector<UniqueFd> kept_outputs_;
  NetUplink uplink_;  // allowlist/lossy network modes: the route out
};

Status LinuxSandbox::Prepare() {
  SPECULA_TRY(ValidateSpec(spec_));
  SPECULA_ASSIGN_OR_RETURN(seccomp_, BuildSeccompProgram(spec_.policy.syscalls));
  SPECULA_ASSIGN_OR_RETURN(priv_.cap_mask, CapabilityMask(spec_.policy.sandbox.capabilities));
  priv_.last_cap = LastCapability();
  priv_.nofile = spec_.policy.resources.nofile;
  externals_ = BuildExternalMounts(spec_);
  // Before anything is created: this is also where a symlink anywhere on a
  // bind's host path is refused.
  for (const auto& b : spec_.binds) {
    SPECULA_ASSIGN_OR_RETURN(auto tree, CloneHostBind(b.host_path, b.read_only));
    bind_trees_.push_back(std::move(tree));
  }
  SPECULA_ASSIGN_OR_RETURN(std::string options, OverlayOptions(spec_));

  if (::mkdir(spec_.run_dir.c_str(), 0700) == 0) {
    created_run_dir_ = true;
  } else if (errno != EEXIST) {
    return Error::FromErrno("mkdir run_dir " + spec_.run_dir);
  }
  merged_ = spec_.run_dir + "/merged";
  if (::mkdir(merged_.c_str(), 0755) != 0) return Error::FromErrno("mkdir " + merged_);
  created_merged_ = true;
  SPECULA_TRY(overlay_.Mount(merged_, options, spec_.work_dir));
  // pivot_root parks the old root on merged/proc: it must be a real directory.
  struct stat st {};
  std::string proc = merged_ + "/proc";
  if (::lstat(proc.c_str(), &st) != 0) {
    if (::mkdir(proc.c_str(), 0555) != 0) return Error::FromErrno("mkdir " + proc);
  } else if (!S_ISDIR(st.st_mode)) {
    return Error(Code::kInvalidArgument, "/proc in the sandbox's root is not a directory");
  }
  SPECULA_ASSIGN_OR_RETURN(cgroup_, SandboxCgroup::Create(spec_.cgroup_parent, spec_.name,
                                                          spec_.policy.resources));
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
  plan.init_program = kSandboxInit;
  plan.init_program_size = kSandboxInit_size;
  plan.init_path = std::string(kIoDirInside) + "/init";
  SPECULA_ASSIGN_OR_RETURN(auto report, Pipe());
  plan.report_fd = report.second.get();

  int pidfd = -1;
  CloneArgs args{};
  args.flags = CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
               kCloneIntoCgroup;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.cgroup = static_cast<uint64_t>(cgroup_.v2_dir_fd());
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) RunInit(plan);  // never returns
  if (pid < 0) return Error::FromErrno("clone3 sandbox init");
  init_pidfd_.Reset(pidfd);
  init_pid_ = static_cast<pid_t>(pid);
  report.second.Reset();
  Status st = ReadChildReport(report.first.get(), "start sandbox init");
  bind_trees_.clear();  // attached by init (or init failed): our clones are not needed
  if (!st.ok()) {
    WaitExit(init_pidfd_.get(), std::chrono::milliseconds(5000), nullptr);
    init_pidfd_.Reset();
    init_pid_ = -1;
    return st;
  }
  return Adopt();
}

Result<RestoreTarget> LinuxSandbox::PrepareRestoreTarget() {
  RestoreTarget t;
  t.root = merged_;
  t.cgroup_paths = cgroup_.paths();
  for (const auto& e : externals_) t.external_mounts.emplace_back(e.key, e.host_path);
  if (bind_trees_.empty()) return t;
  const std::string dir = spec_.run_dir + "/binds";
  if (::mkdir(dir.c_str(), 0700) != 0) return Error::FromErrno("mkdir " + dir);
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
  const std::string dir = spec_.run_dir + "/binds";
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
  return Adopt();
}

Status LinuxSandbox::Adopt() {
  UniqueFd root(::open(("/proc/" + std::to_string(init_pid_) + "/root").c_str(),
                       O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::FromErrno("open root of sandbox init");
  // The sandbox controls everything below its root: resolve inside it only.
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  io_dir_.Reset(static_cast<int>(::syscall(SYS_openat2, root.get(), kIoDirInside + 1, &how, sizeof(how))));
  if (!io_dir_) return Error::FromErrno(std::string("open ") + kIoDirInside + " in the sandbox");
  // The pid could have been reused between pidfd and /proc lookups.
  if (::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), 0, nullptr, 0) != 0) {
    return Error::FromErrno("sandbox init exited during start");
  }
  if (seccomp_.has_defer) SPECULA_TRY(notifier_.Start());
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

Result<ActionResult> LinuxSandbox::Run(const std::string& command, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(run_mu_);
  if (destroyed_ || dying_.load() || !init_pidfd_) return Gone();
  auto r = RunLocked(command, timeout);
  if (!r.ok()) r.Context("sandbox " + spec_.name + ": run action");
  return r;
}

Result<ActionResult> LinuxSandbox::RunLocked(const std::string& command, std::chrono::milliseconds timeout) {
  SPECULA_TRY(shell_.Validate());
  if (command.find('\0') != std::string::npos) {
    return Error(Code::kInvalidArgument, "command contains a NUL byte");
  }
  if (timeout.count() <= 0) timeout = std::chrono::milliseconds(spec_.policy.resources.action_timeout_ms);
  for (const auto& fd : kept_outputs_) (void)::ftruncate(fd.get(), 0);

  // Per-action files on the sandbox's private tmpfs: bash reads the script
  // there and its stdout/stderr go there, so whatever it leaves running has
  // no fd pointing outside the sandbox.
  const std::string token = RandomHex(16);
  const std::string name = "a" + std::to_string(++action_seq_) + "-" + RandomHex(6);
  if (::mkdirat(io_dir_.get(), name.c_str(), 0700) != 0) return Error::FromErrno("mkdir action dir");
  UniqueFd dir(::openat(io_dir_.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return Error::FromErrno("open action dir");
  const std::string inside = std::string(kIoDirInside) + "/" + name;
  auto create = [&](const char* file) {
    return UniqueFd(::openat(dir.get(), file, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  };
  {
    // One fixed path for every action, so the `bash -c` program (and with it
    // the command line of any subshell the action leaves) never varies.
    // Actions run one at a time (run_mu_), so reusing the name is safe.
    if (::unlinkat(io_dir_.get(), kActionScriptName, 0) != 0 && errno != ENOENT) {
      return Error::FromErrno("remove previous action script");
    }
    UniqueFd script(::openat(io_dir_.get(), kActionScriptName,
                             O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!script) return Error::FromErrno("create action script");
    SPECULA_TRY_CTX(WriteAll(script.get(), BuildActionScript(shell_, command, inside + "/state", token)),
                    "write action script");
  }
  UniqueFd out = create("out"), err = create("err");
  if (!out || !err) return Error::FromErrno("create action output files");

  // Everything the launcher child needs, prepared before it exists.
  std::vector<std::string> argv_s = {
      "bash", "--noprofile", "--norc", "-c",
      ActionShellProgram(std::string(kIoDirInside) + "/" + kActionScriptName)};
  std::vector<std::string> env_s = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                    "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"};
  ActionPlan plan;
  for (auto& a : argv_s) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env_s) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.init_pidfd = init_pidfd_.get();
  plan.cgroup_fds = cgroup_.v1_procs_fds();
  plan.cgroup2_dir = cgroup_.v2_dir_fd();
  plan.stdout_fd = out.get();
  plan.stderr_fd = err.get();
  plan.priv = priv_;
  plan.seccomp = seccomp_.fprog();
  plan.seccomp_listener = seccomp_.has_defer;
  UniqueFd listener_recv, listener_send;
  if (seccomp_.has_defer) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return Error::FromErrno("socketpair");
    listener_recv.Reset(sv[0]);
    listener_send.Reset(sv[1]);
    plan.listener_sock = sv[1];
  }
  SPECULA_ASSIGN_OR_RETURN(auto report, Pipe());
  SPECULA_ASSIGN_OR_RETURN(auto pid_pipe, Pipe());
  plan.report_fd = report.second.get();
  plan.pid_fd = pid_pipe.second.get();

  ActionResult result;
  auto start = std::chrono::steady_clock::now();
  long launcher = ::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (launcher == 0) LaunchAction(plan);  // never returns
  if (launcher < 0) return Error::FromErrno("fork action launcher");
  report.second.Reset();
  pid_pipe.second.Reset();
  listener_send.Reset();
  Status started = ReadChildReport(report.first.get(), "start action");
  pid_t pid = 0;
  if (::read(pid_pipe.first.get(), &pid, sizeof(pid)) != sizeof(pid)) pid = 0;
  while (::waitpid(static_cast<pid_t>(launcher), nullptr, 0) < 0 && errno == EINTR) {
  }
  if (!started.ok()) {
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    return std::move(started).error();
  }
  if (pid <= 0) return Error(Code::kInternal, "action launcher reported no pid");
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Error::FromErrno("pidfd_open action");
  }
  if (seccomp_.has_defer) {
    UniqueFd listener = RecvFd(listener_recv.get());
    if (!listener) spdlog::warn("sandbox {}: action sent no seccomp listener", spec_.name);
    else notifier_.AddListener(std::move(listener));
  }

  siginfo_t info{};
  if (!WaitExit(pidfd.get(), timeout, &info)) {
    // Timeout: the action's whole process group dies, the sandbox lives on.
    result.timed_out = true;
    ::kill(-pid, SIGKILL);
    WaitExit(pidfd.get(), std::chrono::milliseconds(-1), &info);
    // The rest of the group dies and is reaped by init asynchronously;
    // return only once it is gone so the caller sees a settled sandbox.
    for (int i = 0; i < 5000 && ::kill(-pid, 0) == 0; ++i) {
      ::kill(-pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (info.si_code == CLD_EXITED) {
    result.exit_code = info.si_status;
  } else {
    result.exit_code = -1;
    result.signal = info.si_status;
  }

  const auto& res = spec_.policy.resources;
  ReadCapped(out.get(), res.stdout_cap, result.stdout_data, result.stdout_truncated);
  ReadCapped(err.get(), res.stderr_cap, result.stderr_data, result.stderr_truncated);
  // Free the tmpfs pages; a background process still writing makes a sparse file.
  (void)::ftruncate(out.get(), 0);
  (void)::ftruncate(err.get(), 0);

  if (!result.timed_out) {
    UniqueFd state(::openat(dir.get(), "state", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    std::string text;
    bool truncated = false;
    if (state) ReadCapped(state.get(), kMaxStateBytes, text, truncated);
    auto parsed = state && !truncated ? ParseCapturedState(text, token)
                                      : Result<ShellState>(Error(Code::kDataLoss, "no state file"));
    if (parsed.ok()) {
      shell_ = std::move(parsed).value();
      result.state_captured = true;
    } else {
      spdlog::debug("sandbox {}: shell state not captured: {}", spec_.name, parsed.error().ToString());
    }
  }
  (void)::unlinkat(io_dir_.get(), kActionScriptName, 0);
  (void)::unlinkat(dir.get(), "state", 0);
  auto live = HasLiveProcesses();
  if (live.ok() && !*live) {
    (void)::unlinkat(dir.get(), "out", 0);
    (void)::unlinkat(dir.get(), "err", 0);
    (void)::unlinkat(io_dir_.get(), name.c_str(), AT_REMOVEDIR);
    kept_outputs_.clear();  // nobody is left to write to earlier files either
  } else if (kept_outputs_.size() < 512) {
    kept_outputs_.push_back(std::move(out));
    kept_outputs_.push_back(std::move(err));
  }
  return result;
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
  kept_outputs_.clear();
  io_dir_.Reset();
  init_pidfd_.Reset();
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
