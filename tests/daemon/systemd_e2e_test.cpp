// The systemd protocols of the real speculad, played by the test since PID 1
// here is not systemd (runtime/rpc/systemd.h):
//   - socket activation: the test binds and listens, forks, puts the socket
//     on fd 3, sets LISTEN_PID (in the child, after fork: it must be the
//     daemon's own pid) and LISTEN_FDS, and execs speculad, as systemd does
//     for packaging/speculad.socket;
//   - Type=notify: the test binds a datagram socket, passes it as
//     NOTIFY_SOCKET and reads READY=1 and STOPPING=1 from it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

extern char** environ;

namespace specula::testing {
namespace {

// A bound socket of `type` at `path`, listening when `listen` (stream only).
UniqueFd BoundSocket(const std::string& path, int type, bool listen) {
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return UniqueFd();
  if (listen && ::listen(fd.get(), 16) != 0) return UniqueFd();
  return fd;
}

// speculad started the way a service manager starts it: `fd3` (if valid)
// becomes fd 3, `env` is added to the environment and, with
// `listen_pid`, LISTEN_PID is set to the child's own pid. Killed and reaped
// on destruction.
class ManagedDaemon {
 public:
  ManagedDaemon(const std::string& dir, std::vector<std::string> args, int fd3, std::vector<std::string> env,
                bool listen_pid)
      : log_path_(dir + "/managed.log") {
    std::vector<std::string> argv_s{SPECULAD_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "LISTEN_", 7) != 0 && std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env_s.emplace_back(*e);
    }
    env_s.insert(env_s.end(), env.begin(), env.end());
    // Filled in by the child: only async-signal-safe work after fork.
    if (listen_pid) env_s.push_back("LISTEN_PID=" + std::string(20, '\0'));
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* pid_slot = listen_pid ? env_s.back().data() + std::strlen("LISTEN_PID=") : nullptr;
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      if (pid_slot) {
        char digits[20];
        int n = 0;
        for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
        for (int i = 0; i < n; ++i) pid_slot[i] = digits[n - 1 - i];
        pid_slot[n] = '\0';
      }
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      if (fd3 >= 0) {
        if (fd3 == 3) {
          ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep FD_CLOEXEC
        } else {
          ::dup2(fd3, 3);  // the copy is not close-on-exec
        }
      }
      ::execve(SPECULAD_PATH, argv.data(), envp.data());
      ::_exit(127);
    }
    if (log >= 0) ::close(log);
  }
  ~ManagedDaemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string Log() const {
    std::ostringstream s;
    s << std::ifstream(log_path_).rdbuf();
    return s.str();
  }
  // The exit status (128+signal when killed), or -1 if still running
  // after `wait`.
  int WaitExit(std::chrono::milliseconds wait = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (pid_ > 0) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  int Terminate() {
    ::kill(pid_, SIGTERM);
    return WaitExit();
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

// Waits until the socket answers daemon.ping (the daemon finished starting).
bool Answers(const std::string& socket, ManagedDaemon& d) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int st;
    if (::waitpid(d.pid(), &st, WNOHANG) == d.pid()) return false;
    auto c = rpc::Client::Connect(socket);
    if (c.ok() && c->Call("daemon.ping", Json::object(), std::chrono::seconds(5)).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The next datagram on fd, "" after `wait` without one.
std::string ReceiveDatagram(int fd, std::chrono::milliseconds wait) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(wait.count())) <= 0) return "";
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

class SystemdE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
  }
  std::vector<std::string> Args(const std::string& socket) {
    return {"--socket", socket, "--state-dir", dir_.path() + "/state", "--log-level", "debug"};
  }
  TempDir dir_;
};

TEST_F(SystemdE2E, ServesTheActivatedSocketAndLeavesItsFileAlone) {
  const std::string activated = dir_.path() + "/activated.sock";
  const std::string own = dir_.path() + "/own.sock";  // --socket: must not be bound
  UniqueFd listener = BoundSocket(activated, SOCK_STREAM, true);
  ASSERT_TRUE(listener) << std::strerror(errno);
  // A mode speculad would never give its own socket: it must keep it.
  ASSERT_EQ(::chmod(activated.c_str(), 0604), 0);
  struct stat before {};
  ASSERT_EQ(::stat(activated.c_str(), &before), 0);

  ManagedDaemon d(dir_.path(), Args(own), listener.get(), {"LISTEN_FDS=1", "LISTEN_FDNAMES=speculad.socket"}, true);
  ASSERT_TRUE(Answers(activated, d)) << d.Log();
  EXPECT_FALSE(std::filesystem::exists(own)) << "bound --socket although a socket was passed";

  auto c = rpc::Client::Connect(activated);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto version = c->Call("daemon.version");
  ASSERT_TRUE(version.ok()) << version.error().ToString();
  EXPECT_EQ((*version)["pid"], d.pid());
  EXPECT_EQ((*version)["socket"], activated);
  // A real session through it; the activation variables reach no sandbox.
  auto created = c->Call("session.create", Json::object(), std::chrono::seconds(60));
  ASSERT_TRUE(created.ok()) << created.error().ToString() << d.Log();
  std::string s = (*created)["session"];
  auto out = c->Call("action.commit",
                     {{"session", s}, {"command", "echo \"${LISTEN_FDS-none} ${LISTEN_PID-none} ${NOTIFY_SOCKET-none}\""}},
                     std::chrono::seconds(60));
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  EXPECT_EQ((*out)["stdout"], "none none none\n");
  EXPECT_NE(d.Log().find("socket activation"), std::string::npos) << d.Log();

  EXPECT_EQ(d.Terminate(), 0) << d.Log();
  // The manager's socket file: still there, as it was.
  struct stat after {};
  ASSERT_EQ(::stat(activated.c_str(), &after), 0) << "speculad removed a socket it did not create";
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode & 07777, 0604u);
  EXPECT_FALSE(std::filesystem::exists(own));
}

TEST_F(SystemdE2E, ABadActivatedFdStopsTheDaemonWithTheReason) {
  struct Case {
    const char* what;
    UniqueFd fd;
    const char* expected;
  };
  std::vector<Case> cases;
  cases.push_back({"a regular file", UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), "is not a socket"});
  cases.push_back({"a datagram socket", BoundSocket(dir_.path() + "/dgram.sock", SOCK_DGRAM, false),
                   "is not a stream socket"});
  cases.push_back({"a stream socket that does not listen",
                   BoundSocket(dir_.path() + "/quiet.sock", SOCK_STREAM, false), "not listening"});
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_TRUE(c.fd);
    ManagedDaemon d(dir_.path(), Args(dir_.path() + "/own.sock"), c.fd.get(), {"LISTEN_FDS=1"}, true);
    int status = d.WaitExit();
    EXPECT_EQ(status, 2) << d.Log();
    EXPECT_NE(d.Log().find(c.expected), std::string::npos) << d.Log();
    EXPECT_NE(d.Log().find("socket activation"), std::string::npos) << d.Log();
    EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/own.sock"));
  }
  // Two sockets: speculad serves one, and says so.
  UniqueFd one = BoundSocket(dir_.path() + "/one.sock", SOCK_STREAM, true);
  ManagedDaemon two(dir_.path(), Args(dir_.path() + "/own.sock"), one.get(), {"LISTEN_FDS=2"}, true);
  EXPECT_EQ(two.WaitExit(), 2) << two.Log();
  EXPECT_NE(two.Log().find("exactly one socket"), std::string::npos) << two.Log();
}

TEST_F(SystemdE2E, VariablesMeantForAnotherProcessAreIgnored) {
  // LISTEN_PID names another process (a parent that did not clean its
  // environment): fd 3 is not ours, speculad binds --socket as usual.
  const std::string own = dir_.path() + "/own.sock";
  UniqueFd listener = BoundSocket(dir_.path() + "/activated.sock", SOCK_STREAM, true);
  ManagedDaemon d(dir_.path(), Args(own), listener.get(), {"LISTEN_FDS=1", "LISTEN_PID=1"}, false);
  ASSERT_TRUE(Answers(own, d)) << d.Log();
  EXPECT_EQ(d.Terminate(), 0) << d.Log();
  // Our LISTEN_PID without LISTEN_FDS: nothing was passed (sd_listen_fds).
  ManagedDaemon e(dir_.path(), Args(own), listener.get(), {}, true);
  ASSERT_TRUE(Answers(own, e)) << e.Log();
  EXPECT_EQ(e.Terminate(), 0) << e.Log();
}

// NOTIFY_SOCKET as a path and as an abstract name.
void ExpectReadyThenStopping(TempDir& dir, const std::string& notify_env, int notify_fd) {
  const std::string socket = dir.path() + "/own.sock";
  ManagedDaemon d(dir.path(), {"--socket", socket, "--state-dir", dir.path() + "/state"}, -1,
                  {"NOTIFY_SOCKET=" + notify_env}, false);
  std::string ready = ReceiveDatagram(notify_fd, std::chrono::seconds(30));
  ASSERT_NE(ready.find("READY=1"), std::string::npos) << "no READY=1, got \"" << ready << "\"\n" << d.Log();
  EXPECT_NE(ready.find("STATUS="), std::string::npos) << ready;
  // At that moment calls are served: no retry.
  auto c = rpc::Client::Connect(socket);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto pong = c->Call("daemon.ping", Json::object(), std::chrono::seconds(5));
  ASSERT_TRUE(pong.ok()) << pong.error().ToString();
  EXPECT_EQ(ReceiveDatagram(notify_fd, std::chrono::milliseconds(200)), "") << "more than one READY";

  ::kill(d.pid(), SIGTERM);
  std::string stopping = ReceiveDatagram(notify_fd, std::chrono::seconds(20));
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << "got \"" << stopping << "\"\n" << d.Log();
  EXPECT_EQ(d.WaitExit(), 0) << d.Log();
}

TEST_F(SystemdE2E, NotifiesReadyWhenServingAndStoppingOnSigterm) {
  const std::string path = dir_.path() + "/notify.sock";
  UniqueFd notify = BoundSocket(path, SOCK_DGRAM, false);
  ASSERT_TRUE(notify) << std::strerror(errno);
  ExpectReadyThenStopping(dir_, path, notify.get());
}

TEST_F(SystemdE2E, NotifiesAnAbstractSocket) {
  std::string name = "specula-notify-test-" + std::to_string(::getpid());
  UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(notify);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(::bind(notify.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  ExpectReadyThenStopping(dir_, "@" + name, notify.get());
}

TEST_F(SystemdE2E, AMalformedNotifySocketIsABadInvocation) {
  ManagedDaemon d(dir_.path(), Args(dir_.path() + "/own.sock"), -1, {"NOTIFY_SOCKET=relative/path"}, false);
  EXPECT_EQ(d.WaitExit(), 2) << d.Log();
  EXPECT_NE(d.Log().find("NOTIFY_SOCKET"), std::string::npos) << d.Log();
}

}  // namespace
}  // namespace specula::testing
