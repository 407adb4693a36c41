#include "tests/daemon/daemon_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "runtime/rpc/client.h"

extern char** environ;

namespace specula::testing {
namespace {

pid_t SpawnDaemon(const std::vector<std::string>& args, const std::string& log_path,
                  const std::vector<std::string>& env_add = {}) {
  std::vector<std::string> argv_s{SPECULAD_PATH};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), env_add.begin(), env_add.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int rc = posix_spawn(&pid, SPECULAD_PATH, &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// waitpid with a deadline; returns the raw status or nullopt on timeout.
std::optional<int> WaitFor(pid_t pid, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Every process descending from root, by walking /proc's parent links.
std::vector<pid_t> Descendants(pid_t root) {
  std::map<pid_t, pid_t> parent;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    parent[pid] = ppid;
  }
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parent) {
    for (pid_t p = ppid; p > 1; p = parent.count(p) ? parent[p] : 0) {
      if (p == root) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

int ExitStatus(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw); }

// Alive and named `comm` (a zombie counts as gone).
bool RunsAs(pid_t pid, const std::string& comm) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  auto open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) return false;
  return stat.substr(open + 1, close - open - 1) == comm && stat[close + 2] != 'Z';
}

// A killed daemon's sandbox watch (sandbox/sandbox_watch.h) cleans up after
// it: kills its sandboxes, removes its cgroup directories. Killing the watch
// too before it is done left an empty specula/i-<hash> directory in every
// cgroup hierarchy per killed daemon (about 80 after one suite run).
void WaitForWatches(const std::vector<pid_t>& pids, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (pid_t p : pids) {
    while (RunsAs(p, "speculad-watch") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/specula-e2e-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  path_ = p ? p : "";
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point;
    f >> id >> parent >> devno >> root >> point;
    if (point == dir || point.rfind(dir + "/", 0) == 0) out.push_back(point);
  }
  return out;
}

// Processes in other mount namespaces whose ROOT mount is an overlay built
// under `dir`: sandboxes of a daemon that ran in it. Their init is
// double-forked (parent 1), so walking the daemon's children does not find
// them. Only the root mount counts (as in runtime/core/crash_recovery.cpp):
// a sandbox of another test that is still being set up has a copy of the
// host's whole mount table, which mentions `dir`, and must not be counted.
std::vector<pid_t> SandboxProcessesUsing(const std::string& dir) {
  std::vector<pid_t> out;
  char self_ns[64] = {};
  if (::readlink("/proc/self/ns/mnt", self_ns, sizeof(self_ns) - 1) < 0) return out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 1 || pid == ::getpid()) continue;
    char ns[64] = {};
    if (::readlink((entry.path() / "ns/mnt").c_str(), ns, sizeof(ns) - 1) < 0) continue;
    if (std::string_view(ns) == self_ns) continue;
    std::ifstream in(entry.path() / "mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string id, parent, devno, root, point;
      f >> id >> parent >> devno >> root >> point;
      if (point == "/" && line.find(dir + "/") != std::string::npos) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

namespace {
void KillSandboxesUsing(const std::string& dir) {
  for (pid_t pid : SandboxProcessesUsing(dir)) ::kill(pid, SIGKILL);
}
}  // namespace

TempDir::~TempDir() {
  if (path_.empty()) return;
  KillSandboxesUsing(path_);
  // The daemon's state dir holds mounts (the store's loop-mounted layer
  // image, CRIU's tmpfs) that a killed daemon cannot remove: detach them,
  // newest first, or the directory cannot be deleted.
  auto mounts = MountsUnder(path_);
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<Daemon>> Daemon::Start(const std::string& dir, std::vector<std::string> extra,
                                              const std::string& name, const std::vector<std::string>& env) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->socket_ = dir + "/" + name + ".sock";
  d->state_dir_ = dir + "/" + name + "-state";
  d->log_path_ = dir + "/" + name + ".log";
  std::vector<std::string> args{"--socket", d->socket_, "--state-dir", d->state_dir_, "--log-level", "debug"};
  args.insert(args.end(), extra.begin(), extra.end());
  d->pid_ = SpawnDaemon(args, d->log_path_, env);
  if (d->pid_ < 0) return Error(Code::kInternal, "posix_spawn " SPECULAD_PATH " failed");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!d->Alive()) return Error(Code::kUnavailable, "speculad exited during start-up:\n" + d->Log());
    auto client = rpc::Client::Connect(d->socket_);
    if (client.ok() && client->Call("daemon.ping", Json::object(), std::chrono::seconds(5)).ok()) return d;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Error(Code::kDeadlineExceeded, "speculad did not answer within 30 s:\n" + d->Log());
}

Daemon::~Daemon() {
  Kill9();
  // SPECULA_TEST_KEEP_LOGS=DIR keeps every daemon's log, passed or failed,
  // for reading the warnings of runs that did not fail (docs/testing.md).
  if (const char* keep = std::getenv("SPECULA_TEST_KEEP_LOGS"); keep != nullptr && *keep != '\0') {
    std::error_code ec;
    std::filesystem::copy_file(log_path_, std::string(keep) + "/" + std::to_string(::getpid()) + "-" +
                                              std::filesystem::path(log_path_).filename().string(),
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
  WaitForWatches(orphans_, std::chrono::seconds(10));
  for (pid_t p : orphans_) ::kill(p, SIGKILL);
}

std::string Daemon::Log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int Daemon::Terminate(std::chrono::milliseconds wait) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  auto status = WaitFor(pid_, wait);
  if (!status) return -1;
  pid_ = -1;
  return ExitStatus(*status);
}

std::optional<int> Daemon::WaitExit(std::chrono::milliseconds wait) {
  if (pid_ <= 0) return std::nullopt;
  // Its sandboxes outlive it (as after a Kill9) until this object goes.
  auto left = Descendants(pid_);
  auto status = WaitFor(pid_, wait);
  if (!status) return std::nullopt;
  orphans_.insert(orphans_.end(), left.begin(), left.end());
  pid_ = -1;
  return *status;
}

void Daemon::Kill9() {
  if (pid_ <= 0) return;
  auto left = Descendants(pid_);
  orphans_.insert(orphans_.end(), left.begin(), left.end());
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool Daemon::Alive() {
  if (pid_ <= 0) return false;
  int status;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int RunDaemonToExit(const std::string& dir, std::vector<std::string> args, std::string* log,
                    std::chrono::milliseconds wait) {
  std::string log_path = dir + "/run-to-exit.log";
  pid_t pid = SpawnDaemon(args, log_path);
  if (pid < 0) return -1;
  auto status = WaitFor(pid, wait);
  if (!status) {
    ::kill(pid, SIGKILL);
    int s;
    ::waitpid(pid, &s, 0);
  }
  if (log) {
    std::ifstream in(log_path);
    std::stringstream ss;
    ss << in.rdbuf();
    *log = ss.str();
  }
  return status ? ExitStatus(*status) : -1;
}

SpawnResult RunCli(const std::string& socket, std::vector<std::string> args, std::vector<std::string> env,
                   int (*child_setup)(void*), void* arg) {
  SpawnOptions opts;
  opts.argv = {SPECULA_CLI_PATH};
  if (!socket.empty()) {
    opts.argv.push_back("--socket");
    opts.argv.push_back(socket);
  }
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.env_set = std::move(env);
  opts.timeout = std::chrono::seconds(120);
  opts.child_setup = child_setup;
  opts.child_setup_arg = arg;
  auto r = Spawn(opts);
  if (!r.ok()) {
    SpawnResult failed;
    failed.err = r.error().ToString();
    return failed;
  }
  return std::move(*r);
}

Result<RawConn> RawConn::Connect(const std::string& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error::FromErrno("connect " + socket);
  }
  return RawConn(std::move(fd));
}

Status RawConn::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("send");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<std::optional<std::string>> RawConn::ReadLine(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto pos = buf_.find('\n'); pos != std::string::npos) {
      std::string line = buf_.substr(0, pos);
      buf_.erase(0, pos + 1);
      return std::optional<std::string>(std::move(line));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error(Code::kDeadlineExceeded, "no line from the daemon in time");
    pollfd pfd{fd_.get(), POLLIN, 0};
    int pr = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return Error::FromErrno("poll");
    if (pr == 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) return std::optional<std::string>();
    if (n < 0) return Error::FromErrno("recv");
    if (n == 0) return std::optional<std::string>();
    buf_.append(buf, static_cast<size_t>(n));
  }
}

Result<Json> RawConn::Roundtrip(const Json& request) {
  SPECULA_TRY(Send(request.dump() + "\n"));
  SPECULA_ASSIGN_OR_RETURN(auto line, ReadLine());
  if (!line) return Error(Code::kUnavailable, "daemon closed the connection");
  Json reply = Json::parse(*line, nullptr, false);
  if (reply.is_discarded()) return Error(Code::kInternal, "reply is not JSON: " + *line);
  return reply;
}

}  // namespace specula::testing
