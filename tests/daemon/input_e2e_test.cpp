// Bad input at the daemon's door (issue 12 "Bad input"), through the real
// speculad: ids echoed byte for byte over the socket, bases that are not a
// plain directory tree, policies that reach the root or the state dir, and a
// peer outside the configured group.
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

class InputE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }
  // session.create over a raw connection; the reply's error object.
  Json CreateError(const Json& params) {
    auto raw = RawConn::Connect(daemon_->socket());
    EXPECT_TRUE(raw.ok());
    if (!raw.ok()) return Json();
    auto reply = raw->Roundtrip(Json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "session.create"}, {"params", params}});
    EXPECT_TRUE(reply.ok()) << reply.error().ToString();
    if (!reply.ok()) return Json();
    EXPECT_TRUE(reply->contains("error")) << params.dump() << " -> " << reply->dump();
    return reply->value("error", Json());
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

// The text after "id": in a reply line, up to the next member.
std::string IdText(const std::string& line) {
  size_t at = line.find("\"id\":");
  if (at == std::string::npos) return "<no id>";
  size_t end = line.find(",\"", at + 5);
  return line.substr(at + 5, end - at - 5);
}

TEST_F(InputE2E, IdsAreEchoedExactlyOverTheSocket) {
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok()) << raw.error().ToString();
  const std::vector<std::string> ids = {
      "\"a-string\"", "\"\\u0041\"", "null", "0", "-1", "9007199254740993", "9223372036854775807",
      "-9223372036854775808", "18446744073709551615", "123456789012345678901234567890", "1.5", "1.50",
      "-0.25", "1e2"};
  for (const std::string& id : ids) {
    // A method that answers, one that does not exist, and a protocol error.
    for (const std::string& body : {std::string(R"("jsonrpc":"2.0","method":"daemon.ping")"),
                                    std::string(R"("jsonrpc":"2.0","method":"no.such")"),
                                    std::string(R"("jsonrpc":"1.0","method":"daemon.ping")")}) {
      ASSERT_TRUE(raw->Send("{" + body + ",\"id\":" + id + "}\n").ok());
      auto line = raw->ReadLine();
      ASSERT_TRUE(line.ok()) << line.error().ToString();
      ASSERT_TRUE(line->has_value()) << "connection closed";
      EXPECT_EQ(IdText(**line), id) << **line;
      EXPECT_FALSE(Json::parse(**line, nullptr, false).is_discarded()) << **line;
    }
  }
}

TEST_F(InputE2E, SessionBaseMustBeAPlainDirectoryTree) {
  std::string tree = dir_.path() + "/tree";
  std::filesystem::create_directories(tree + "/sub");
  std::ofstream(tree + "/file") << "x";
  std::filesystem::create_directory_symlink(tree, dir_.path() + "/link");
  const std::vector<std::pair<std::string, std::string>> bases = {
      {"/proc", "proc file system"},
      {"/proc/self", "symlink"},
      {"/sys", "sysfs file system"},
      {"/sys/kernel", "sysfs file system"},
      {"/dev", "devtmpfs file system"},
      {tree + "/file", "is not a directory"},
      {dir_.path() + "/link", "symlink"},
      {dir_.path() + "/link/sub", "symlink"},
      {daemon_->state_dir(), "state dir"},
      {tree + "/../tree", "absolute path"},
  };
  for (const auto& [base, why] : bases) {
    Json err = CreateError({{"base", base}});
    EXPECT_EQ(err["data"]["kind"], "invalid_argument") << base << ": " << err.dump();
    EXPECT_NE(err.value("message", "").find(why), std::string::npos) << base << ": " << err.dump();
    EXPECT_TRUE(err["data"].contains("hint")) << base << ": " << err.dump();
  }
  // A plain directory is fine.
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok());
  auto ok = raw->Roundtrip(Json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "session.create"}, {"params", {{"base", tree}}}});
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->contains("result")) << ok->dump();
}

TEST_F(InputE2E, PoliciesReachingTheRootOrTheStateDirAreRefused) {
  auto write = [&](const std::string& name, const std::string& lossy) {
    std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << "[sandbox]\nuser_namespace = false\n[[filesystem.lossy]]\npath = \"" << lossy
                        << "\"\ntag = \"t\"\n";
    return path;
  };
  for (const char* root : {"/*", "/**", "//", "/./"}) {
    std::string file = write("root.toml", root);
    Json err = CreateError({{"base", dir_.path()}, {"policy", file}});
    EXPECT_EQ(err["data"]["kind"], "invalid_argument") << root << ": " << err.dump();
    EXPECT_NE(err.value("message", "").find(file + ":"), std::string::npos) << err.dump();
    EXPECT_NE(err.value("message", "").find("filesystem.lossy[0]"), std::string::npos) << err.dump();
    EXPECT_TRUE(err["data"].contains("hint")) << err.dump();
    // The same lines `specula policy check` prints.
    SpawnResult check = RunCli("", {"policy", "check", file});
    EXPECT_EQ(check.exit_code, 1);
    std::string first = check.err.substr(0, check.err.find('\n'));
    EXPECT_NE(err.value("message", "").find(first), std::string::npos) << first << "\n" << err.dump();
  }
  // This daemon's state dir is not the default one: the daemon knows it.
  std::string state = write("state.toml", daemon_->state_dir() + "/lay*");
  Json err = CreateError({{"base", dir_.path()}, {"policy", state}});
  EXPECT_EQ(err["data"]["kind"], "invalid_argument") << err.dump();
  EXPECT_NE(err.value("message", "").find("reaches the daemon's state dir \"" + daemon_->state_dir() + "\""),
            std::string::npos)
      << err.dump();
  EXPECT_TRUE(err["data"].contains("hint")) << err.dump();
  std::string host = write("host.toml", "/proc/sys/kernel/hostname");
  Json uts = CreateError({{"base", dir_.path()}, {"policy", host}});
  EXPECT_NE(uts.value("message", "").find("uts namespace"), std::string::npos) << uts.dump();
}

// What the forked child reports: connect's errno, or the reply line.
struct PeerProbe {
  sockaddr_un addr;
  char reply[4096];
};

// As uid 65534, gid 100 ("users"; 65534 is "nogroup", the allowed group)
// and no supplementary groups, after a fork: raw calls
// only, the reply written to `out_fd`.
[[noreturn]] void ConnectAsOutsider(const PeerProbe& probe, int out_fd) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(100, 100, 100) != 0 ||
      ::setresuid(65534, 65534, 65534) != 0) {
    ::_exit(10);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ::_exit(11);
  // A daemon that never answered must fail the test, not hang it.
  timeval limit{30, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) != 0) ::_exit(15);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&probe.addr), sizeof(probe.addr)) != 0) ::_exit(12);
  const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.ping\"}\n";
  // The daemon may refuse (reply and close) before the ping arrives: a
  // write then fails with EPIPE (MSG_NOSIGNAL: no SIGPIPE, the CI flake),
  // and the refusal is still there to read.
  if (::send(fd, ping, sizeof(ping) - 1, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET) ::_exit(13);
  // One reply line is all a refused peer gets (the daemon may keep the
  // connection open a moment to drain what was sent, so no EOF to wait for).
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) ::_exit(n == 0 ? 16 : 17);
    if (::write(out_fd, buf, static_cast<size_t>(n)) < 0) ::_exit(14);
    if (::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr) break;
  }
  ::_exit(0);
}

TEST(InputAuthE2E, OutsiderIsRefusedWithTheConfiguredGroupNamed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  auto d = Daemon::Start(dir.path(), {"--group", "nogroup"});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  // The file mode would let anyone in: the daemon's own check must refuse.
  ASSERT_EQ(::chmod((*d)->socket().c_str(), 0666), 0);
  PeerProbe probe{};
  probe.addr.sun_family = AF_UNIX;
  ASSERT_LT((*d)->socket().size(), sizeof(probe.addr.sun_path));
  std::memcpy(probe.addr.sun_path, (*d)->socket().c_str(), (*d)->socket().size());
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    ConnectAsOutsider(probe, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;) reply.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  Json j = Json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << reply;
  EXPECT_TRUE(j["id"].is_null()) << reply;
  EXPECT_EQ(j["error"]["data"]["kind"], "permission_denied") << reply;
  EXPECT_NE(j["error"]["message"].get<std::string>().find("uid 65534"), std::string::npos) << reply;
  std::string hint = j["error"]["data"].value("hint", "");
  EXPECT_NE(hint.find("\"nogroup\""), std::string::npos) << reply;
  EXPECT_EQ(hint.find("\"specula\""), std::string::npos) << reply;
}

}  // namespace
}  // namespace specula::testing
