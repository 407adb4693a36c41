#include "sandbox/action_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <thread>

#include "common/child_report.h"
#include "common/safe_fs.h"
#include "sandbox/action_script.h"
#include "sandbox/launcher/launch_plan.h"
#include "sandbox/sandbox_plan.h"

namespace specula::sandbox {
namespace {

constexpr size_t kMaxStateBytes = 64u << 20;
// In the sandbox's action tmpfs (kIoDirInside): one fixed path for every
// action, so the `bash -c` program (and with it the command line of any
// subshell the action leaves) never varies. Actions run one at a time.
constexpr const char* kActionScriptName = "action.sh";
// How often a running action's output files are checked against the caps.
constexpr std::chrono::milliseconds kOutputCheck{10};

std::string RandomHex(size_t bytes) {
  unsigned char buf[32];
  bytes = std::min(bytes, sizeof(buf));
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(buf + got, bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
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

// The bytes of an object, for common/safe_fs.h WriteAll.
std::string_view Bytes(const void* data, size_t size) { return {static_cast<const char*>(data), size}; }

// Reads at most cap bytes of a file the action wrote; reports truncation.
void ReadCapped(int fd, uint64_t cap, std::string& out, bool& truncated) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  uint64_t size = static_cast<uint64_t>(st.st_size);
  truncated = size > cap;
  out.resize(std::min(size, cap));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
}

// Output past the cap is never read: give its tmpfs pages back while the
// action runs (a hole; the file offset moves on), so a command printing
// gigabytes is cut, not failed by a full tmpfs, and its stderr survives.
void CapOutput(int fd, uint64_t cap) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) <= cap) return;
  if (static_cast<uint64_t>(st.st_blocks) * 512 <= cap + (1u << 20)) return;  // already punched
  (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(cap),
                    st.st_size - static_cast<off_t>(cap));
}

// Hands a running action's output to Run's on_output as it grows: each
// check reads what the file gained since the last one, up to the cap (the
// parent reads the file; nothing runs in the action's process). Finish
// hands over the rest of the final text, so the pieces add up to it.
class OutputPump {
 public:
  OutputPump(int fd, uint64_t cap, OutputStream stream, const OutputSink& sink)
      : fd_(fd), cap_(cap), stream_(stream), sink_(sink) {}

  void Check() {
    if (!sink_) return;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return;
    uint64_t end = std::min(static_cast<uint64_t>(st.st_size), cap_);
    while (sent_ < end) {
      // One buffer per stream, made on first output: most actions print little.
      if (buf_.empty()) buf_.resize(64 * 1024);
      size_t want = static_cast<size_t>(std::min<uint64_t>(end - sent_, buf_.size()));
      ssize_t n = ::pread(fd_, buf_.data(), want, static_cast<off_t>(sent_));
      if (n <= 0) return;
      sent_ += static_cast<uint64_t>(n);
      sink_(stream_, std::string_view(buf_.data(), static_cast<size_t>(n)));
    }
  }
  // `final_text` is what the result carries (read from the same file).
  void Finish(const std::string& final_text) {
    if (sink_ && sent_ < final_text.size()) sink_(stream_, std::string_view(final_text).substr(sent_));
  }

 private:
  int fd_;
  uint64_t cap_;
  OutputStream stream_;
  const OutputSink& sink_;
  uint64_t sent_ = 0;
  std::string buf_;
};

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

}  // namespace

Result<ActionProcess> ActionProcess::Adopt(pid_t pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) {
    Error e = Error::FromErrno("pidfd_open action " + std::to_string(pid));
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return e;
  }
  return ActionProcess(std::move(fd), pid);
}

ActionProcess::~ActionProcess() {
  if (pid_ <= 0 || reaped_) return;
  KillGroup();
  Wait(std::chrono::milliseconds(-1), nullptr);
}

bool ActionProcess::Wait(std::chrono::milliseconds timeout, siginfo_t* info) {
  if (reaped_) {
    if (info) *info = status_;
    return true;
  }
  pollfd p{pidfd_.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  siginfo_t si{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &si, WEXITED) != 0 &&
         errno == EINTR) {
  }
  reaped_ = true;
  status_ = si;
  if (info) *info = si;
  return true;
}

void ActionProcess::KillGroup() {
  ::kill(-pid_, SIGKILL);
  if (!reaped_) Wait(std::chrono::milliseconds(-1), nullptr);
  // The rest of the group dies and is reaped by init asynchronously; return
  // only once it is gone so the caller sees a settled sandbox.
  for (int i = 0; i < 5000 && ::kill(-pid_, 0) == 0; ++i) {
    ::kill(-pid_, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<UniqueFd> SealedProgram(const char* name, const unsigned char* bytes, size_t size) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::FromErrno(std::string("memfd_create ") + name);
  SPECULA_TRY_CTX(WriteAll(fd.get(), Bytes(bytes, size)), std::string("write ") + name);
  if (::fchmod(fd.get(), 0500) != 0) return Error::FromErrno(std::string("chmod ") + name);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return Error::FromErrno(std::string("seal ") + name);
  }
  return fd;
}

Result<UniqueFd> WriteLaunchPlan(const std::vector<std::string>& argv, const std::vector<std::string>& envp,
                                 const std::string& exe, const SeccompProgram& seccomp, const PrivilegePlan& priv,
                                 uint32_t setns_flags, bool user_namespace, size_t n_v1_cgroups) {
  if (argv.empty() || argv.size() > SPECULA_LAUNCH_MAX_ARGS || envp.size() > SPECULA_LAUNCH_MAX_ARGS) {
    return Error(Code::kInvalidArgument, "launch plan: 1.." + std::to_string(SPECULA_LAUNCH_MAX_ARGS) +
                                             " arguments and environment entries");
  }
  if (n_v1_cgroups > SPECULA_LAUNCH_MAX_V1_CGROUPS) {
    return Error(Code::kInvalidArgument, "launch plan: too many v1 cgroups");
  }
  specula_launch_plan p{};
  p.magic = SPECULA_LAUNCH_MAGIC;
  p.version = SPECULA_LAUNCH_VERSION;
  p.setns_flags = setns_flags;
  p.user_namespace = user_namespace ? 1 : 0;
  p.n_v1_cgroups = static_cast<uint32_t>(n_v1_cgroups);
  p.has_listener = seccomp.has_defer ? 1 : 0;
  p.last_cap = priv.last_cap;
  p.cap_mask = priv.cap_mask;
  p.nofile = priv.nofile;
  std::string area;
  auto put = [&](const std::string& s) {
    uint32_t off = static_cast<uint32_t>(sizeof(p) + area.size());
    area += s;
    area.push_back('\0');
    return off;
  };
  p.exe_off = put(exe);
  p.dev_null_off = put("/dev/null");
  p.argc = static_cast<uint32_t>(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) p.argv_off[i] = put(argv[i]);
  p.envc = static_cast<uint32_t>(envp.size());
  for (size_t i = 0; i < envp.size(); ++i) p.envp_off[i] = put(envp[i]);
  while ((sizeof(p) + area.size()) % 8 != 0) area.push_back('\0');
  p.seccomp_off = static_cast<uint32_t>(sizeof(p) + area.size());
  p.seccomp_len = static_cast<uint32_t>(seccomp.filter.size());
  area.append(reinterpret_cast<const char*>(seccomp.filter.data()), seccomp.filter.size() * sizeof(sock_filter));
  p.total_bytes = static_cast<uint32_t>(sizeof(p) + area.size());
  if (p.total_bytes >= SPECULA_LAUNCH_MAX_BYTES) return Error(Code::kInvalidArgument, "launch plan too large");

  UniqueFd fd(::memfd_create("specula-plan", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::FromErrno("memfd_create launch plan");
  SPECULA_TRY_CTX(WriteAll(fd.get(), Bytes(&p, sizeof(p))), "write launch plan");
  SPECULA_TRY_CTX(WriteAll(fd.get(), Bytes(area.data(), area.size())), "write launch plan");
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return Error::FromErrno("seal launch plan");
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return Error::FromErrno("rewind launch plan");
  return fd;
}

Result<ActionProcess> ActionRunner::Launch(int stdout_fd, int stderr_fd, UniqueFd* listener) {
  const SandboxSpec& spec = *env_.spec;
  const bool userns = spec.policy.sandbox.user_namespace;
  uint32_t setns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWTIME;
  // CLONE_NEWTIME too: a CRIU-restored init lives in a time namespace of its
  // own, and actions (and the jobs they leave) must share it, or the next
  // dump/restore fails ("Can't restore sub-task in NS (cflags 80)").
  // The user namespace is joined by the action itself, after the clone
  // (sandbox/launcher/launcher.c says why); until then the launcher holds
  // the host's root in the sandbox's other namespaces.
  SPECULA_ASSIGN_OR_RETURN(
      UniqueFd plan,
      WriteLaunchPlan({"bash", "--noprofile", "--norc", "-c",
                       ActionShellProgram(std::string(kIoDirInside) + "/" + kActionScriptName)},
                      {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                       "LANG=C.UTF-8", "TERM=dumb"},
                      "/bin/bash", *env_.seccomp, *env_.priv, setns, userns, env_.v1_procs_fds.size()));
  UniqueFd listener_send;
  if (env_.seccomp->has_defer) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return Error::FromErrno("socketpair");
    listener->Reset(sv[0]);
    listener_send.Reset(sv[1]);
  }
  SPECULA_ASSIGN_OR_RETURN(auto report, Pipe());
  SPECULA_ASSIGN_OR_RETURN(auto pid_pipe, Pipe());
  LauncherFds fds;
  fds.launcher = env_.launcher;
  fds.plan = plan.get();
  fds.report = report.second.get();
  fds.pid = pid_pipe.second.get();
  fds.init_pidfd = env_.init_pidfd;
  fds.cgroup2 = env_.cgroup2_dir;
  fds.stdout_fd = stdout_fd;
  fds.stderr_fd = stderr_fd;
  fds.listener = listener_send.get();
  fds.v1_cgroups = env_.v1_procs_fds;

  long launcher = ::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (launcher == 0) ExecLauncher(fds);  // never returns
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
    Error e = std::move(started).error();
    if (e.sys_errno() == ENOENT && e.message().rfind("start action: exec bash: ", 0) == 0) {
      e.WithHint("the sandbox's root (the session's base and its layers) has no /bin/bash, and every action runs "
                 "as /bin/bash -c: create the session over a tree that has bash (a debootstrap or container-image "
                 "root, or /)");
    }
    return e;
  }
  if (pid <= 0) return Error(Code::kInternal, "action launcher reported no pid");
  return ActionProcess::Adopt(pid);
}

Result<ActionResult> ActionRunner::Run(ShellState& shell, const std::string& command,
                                       std::chrono::milliseconds timeout, const OutputSink& on_output) {
  const SandboxSpec& spec = *env_.spec;
  SPECULA_TRY(shell.Validate());
  if (command.find('\0') != std::string::npos) {
    return Error(Code::kInvalidArgument, "command contains a NUL byte");
  }
  if (timeout.count() <= 0) timeout = std::chrono::milliseconds(spec.policy.resources.action_timeout_ms);
  for (const auto& fd : kept_outputs_) (void)::ftruncate(fd.get(), 0);

  // Per-action files on the sandbox's private tmpfs: bash reads the script
  // there and its stdout/stderr go there, so whatever it leaves running has
  // no fd pointing outside the sandbox. In a user namespace they are made
  // with the sandbox root's ids (the tmpfs belongs to its namespace).
  std::optional<ScopedFsIds> ids;
  if (spec.policy.sandbox.user_namespace) {
    ids.emplace(spec.ids);
    SPECULA_TRY(ids->status());
  }
  const std::string token = RandomHex(16);
  const std::string name = "a" + std::to_string(++seq_) + "-" + RandomHex(6);
  if (::mkdirat(env_.io_dir, name.c_str(), 0700) != 0) return Error::FromErrno("mkdir action dir");
  UniqueFd dir(::openat(env_.io_dir, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return Error::FromErrno("open action dir");
  const std::string inside = std::string(kIoDirInside) + "/" + name;
  auto create = [&](const char* file) {
    return UniqueFd(::openat(dir.get(), file, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  };
  {
    if (::unlinkat(env_.io_dir, kActionScriptName, 0) != 0 && errno != ENOENT) {
      return Error::FromErrno("remove previous action script");
    }
    UniqueFd script(::openat(env_.io_dir, kActionScriptName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             0600));
    if (!script) return Error::FromErrno("create action script");
    std::string text = BuildActionScript(shell, command, inside + "/state", token);
    SPECULA_TRY_CTX(WriteAll(script.get(), text), "write action script");
  }
  UniqueFd out = create("out"), err = create("err");
  if (!out || !err) return Error::FromErrno("create action output files");
  ids.reset();

  ActionResult result;
  auto start = std::chrono::steady_clock::now();
  UniqueFd listener_recv;
  SPECULA_ASSIGN_OR_RETURN(ActionProcess proc, Launch(out.get(), err.get(), &listener_recv));
  if (env_.seccomp->has_defer) {
    UniqueFd listener = RecvFd(listener_recv.get());
    if (listener) {
      env_.notifier->AddListener(std::move(listener));
    } else {
      // A branch killed while launching (discarded, the session aborted)
      // never gets to send it: routine (the SIGKILL may still be landing,
      // hence the short wait, paid only here). An action alive without one
      // runs with its deferred calls refused (the filter holds either way).
      pollfd pfd{proc.pidfd(), POLLIN, 0};
      bool ended = ::poll(&pfd, 1, 100) == 1;
      if (ended) spdlog::debug("sandbox {}: action ended before sending its seccomp listener", spec.name);
      else spdlog::warn("sandbox {}: action sent no seccomp listener: its deferred calls are refused", spec.name);
    }
  }

  const auto& res = spec.policy.resources;
  OutputPump out_pump(out.get(), res.stdout_cap, OutputStream::kStdout, on_output);
  OutputPump err_pump(err.get(), res.stderr_cap, OutputStream::kStderr, on_output);
  siginfo_t info{};
  const auto deadline = start + timeout;
  bool exited = false;
  while (!exited) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    exited = proc.Wait(std::min(left, kOutputCheck), &info);
    out_pump.Check();
    err_pump.Check();
    CapOutput(out.get(), res.stdout_cap);
    CapOutput(err.get(), res.stderr_cap);
  }
  if (!exited) {
    // Timeout: the action's whole process group dies, the sandbox lives on.
    result.timed_out = true;
    proc.KillGroup();
    proc.Wait(std::chrono::milliseconds(-1), &info);
  }
  result.duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  if (info.si_code == CLD_EXITED) {
    result.exit_code = info.si_status;
  } else {
    result.exit_code = -1;
    result.signal = info.si_status;
  }

  ReadCapped(out.get(), res.stdout_cap, result.stdout_data, result.stdout_truncated);
  ReadCapped(err.get(), res.stderr_cap, result.stderr_data, result.stderr_truncated);
  out_pump.Finish(result.stdout_data);
  err_pump.Finish(result.stderr_data);
  // Free the tmpfs pages; a background process still writing makes a sparse file.
  (void)::ftruncate(out.get(), 0);
  (void)::ftruncate(err.get(), 0);

  if (!result.timed_out) {
    // The sandbox's root can put anything at this name: O_NONBLOCK so a
    // FIFO cannot block the open (it did: the run never returned), and only
    // a regular file is read.
    UniqueFd state(::openat(dir.get(), "state", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    struct stat sst {};
    if (state && (::fstat(state.get(), &sst) != 0 || !S_ISREG(sst.st_mode))) state.Reset();
    std::string text;
    bool truncated = false;
    if (state) ReadCapped(state.get(), kMaxStateBytes, text, truncated);
    auto parsed = state && !truncated ? ParseCapturedState(text, token)
                                      : Result<ShellState>(Error(Code::kDataLoss, "no state file"));
    if (parsed.ok()) {
      shell = std::move(parsed).value();
      result.state_captured = true;
    } else {
      spdlog::debug("sandbox {}: shell state not captured: {}", spec.name, parsed.error().ToString());
    }
  }
  (void)::unlinkat(env_.io_dir, kActionScriptName, 0);
  (void)::unlinkat(dir.get(), "state", 0);
  auto live = env_.has_live_processes();
  if (live.ok() && !*live) {
    (void)::unlinkat(dir.get(), "out", 0);
    (void)::unlinkat(dir.get(), "err", 0);
    (void)::unlinkat(env_.io_dir, name.c_str(), AT_REMOVEDIR);
    kept_outputs_.clear();  // nobody is left to write to earlier files either
  } else if (kept_outputs_.size() < 512) {
    kept_outputs_.push_back(std::move(out));
    kept_outputs_.push_back(std::move(err));
  }
  return result;
}

}  // namespace specula::sandbox
