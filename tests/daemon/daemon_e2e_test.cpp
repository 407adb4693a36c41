// The real speculad over its real socket: protocol, bad input, many
// clients, shutdown, restart. Runs as root (the daemon needs it).
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <set>
#include <filesystem>
#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

class DaemonE2E : public ::testing::Test {
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
  Result<rpc::Client> Client() { return rpc::Client::Connect(daemon_->socket()); }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

Json Req(int id, const std::string& method, Json params = Json::object()) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

TEST_F(DaemonE2E, PingVersionAndTheContractsMethodNames) {
  auto c = Client();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto pong = c->Call("daemon.ping");
  ASSERT_TRUE(pong.ok()) << pong.error().ToString();
  EXPECT_EQ((*pong)["pong"], true);
  auto version = c->Call("daemon.version");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ((*version)["pid"], daemon_->pid());
  EXPECT_EQ((*version)["socket"], daemon_->socket());
  auto methods = c->Call("daemon.methods");
  ASSERT_TRUE(methods.ok());
  for (const char* m : {"session.create", "session.list", "session.show", "session.destroy", "session.rollback",
                        "action.speculate", "action.commit", "action.abort", "branch.list", "branch.show",
                        "branch.diff", "checkpoint.list", "checkpoint.show", "checkpoint.mount",
                        "checkpoint.umount"}) {
    EXPECT_NE(std::find(methods->begin(), methods->end(), m), methods->end()) << m;
  }
}

TEST_F(DaemonE2E, SessionListStartsEmptyAndUnknownSessionIsNotFound) {
  auto c = Client();
  ASSERT_TRUE(c.ok());
  auto list = c->Call("session.list");
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  EXPECT_EQ(*list, Json::array());
  auto show = c->Call("session.show", {{"session", "no-such-session"}});
  ASSERT_FALSE(show.ok());
  EXPECT_EQ(show.error().code(), Code::kNotFound) << show.error().ToString();
}

TEST_F(DaemonE2E, MalformedJsonGetsParseErrorAndTheConnectionStaysUsable) {
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(raw->Send("{this is not json\n").ok());
  auto line = raw->ReadLine();
  ASSERT_TRUE(line.ok() && *line) << "no reply to malformed JSON";
  Json err = Json::parse(**line);
  EXPECT_EQ(err["error"]["code"], -32700);
  EXPECT_TRUE(err["id"].is_null());
  auto pong = raw->Roundtrip(Req(2, "daemon.ping"));
  ASSERT_TRUE(pong.ok()) << pong.error().ToString();
  EXPECT_EQ((*pong)["id"], 2);
  EXPECT_EQ((*pong)["result"]["pong"], true);
}

TEST_F(DaemonE2E, UnknownMethodWrongTypesAndUnknownParams) {
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok());
  auto unknown = raw->Roundtrip(Req(1, "session.explode"));
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ((*unknown)["error"]["code"], -32601);
  EXPECT_NE((*unknown)["error"]["message"].get<std::string>().find("session.explode"), std::string::npos);

  auto wrong_type = raw->Roundtrip(Req(2, "session.show", {{"session", 42}}));
  ASSERT_TRUE(wrong_type.ok());
  EXPECT_EQ((*wrong_type)["error"]["code"], -32001);
  EXPECT_EQ((*wrong_type)["error"]["data"]["kind"], "invalid_argument");
  EXPECT_EQ((*wrong_type)["error"]["message"], "session.show: param \"session\" must be a string");

  auto typo = raw->Roundtrip(Req(3, "session.list", {{"sesion", "x"}}));
  ASSERT_TRUE(typo.ok());
  EXPECT_EQ((*typo)["error"]["data"]["kind"], "invalid_argument");

  auto bad_path = raw->Roundtrip(Req(4, "session.create", {{"base", "relative/dir"}}));
  ASSERT_TRUE(bad_path.ok());
  EXPECT_EQ((*bad_path)["error"]["data"]["kind"], "invalid_argument");

  auto bad_id = raw->Roundtrip(Req(5, "branch.show", {{"branch", "../../etc"}}));
  ASSERT_TRUE(bad_id.ok());
  EXPECT_EQ((*bad_id)["error"]["data"]["kind"], "invalid_argument");

  auto positional = raw->Roundtrip(Json{{"jsonrpc", "2.0"}, {"id", 6}, {"method", "daemon.ping"}, {"params", {1, 2}}});
  ASSERT_TRUE(positional.ok());
  EXPECT_EQ((*positional)["error"]["code"], -32602);
  EXPECT_EQ((*positional)["id"], 6);

  auto batch = raw->Roundtrip(Json::array({Req(7, "daemon.ping")}));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)["error"]["code"], -32600);
}

TEST_F(DaemonE2E, NotificationsGetNoReplyAndPipelinedRequestsAllAnswered) {
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok());
  std::string batch = R"({"jsonrpc":"2.0","method":"daemon.ping"})" "\n";
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) batch += Req(i, i % 2 ? "daemon.ping" : "session.list").dump() + "\n";
  ASSERT_TRUE(raw->Send(batch).ok());
  std::set<int> ids;
  for (int i = 0; i < kCount; ++i) {
    auto line = raw->ReadLine();
    ASSERT_TRUE(line.ok() && *line) << "reply " << i << " missing";
    Json reply = Json::parse(**line);
    ASSERT_TRUE(reply["id"].is_number()) << **line;  // never the notification's
    EXPECT_TRUE(reply.contains("result")) << **line;
    ids.insert(reply["id"].get<int>());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kCount));
}

TEST_F(DaemonE2E, OversizedMessageIsRefusedAndOnlyThatConnectionDropped) {
  auto bystander = Client();
  ASSERT_TRUE(bystander.ok());
  auto raw = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(raw.ok());
  std::string huge = R"({"jsonrpc":"2.0","id":1,"method":"daemon.ping","params":{"pad":")";
  huge += std::string(5u << 20, 'x');  // 5 MiB > the 4 MiB cap, no newline yet
  // The daemon may close while we are still sending: that is the point.
  (void)raw->Send(huge);
  auto line = raw->ReadLine();
  ASSERT_TRUE(line.ok()) << line.error().ToString();
  ASSERT_TRUE(*line) << "expected an error line before the connection closed";
  Json err = Json::parse(**line);
  EXPECT_EQ(err["error"]["code"], -32600);
  EXPECT_NE(err["error"]["message"].get<std::string>().find("exceeds"), std::string::npos);
  auto eof = raw->ReadLine();
  ASSERT_TRUE(eof.ok());
  EXPECT_FALSE(*eof) << "connection should be closed after an oversized message";
  auto pong = bystander->Call("daemon.ping");
  EXPECT_TRUE(pong.ok()) << pong.error().ToString();
}

TEST_F(DaemonE2E, ClientsVanishingMidCallDoNotHurtTheDaemon) {
  for (int i = 0; i < 300; ++i) {
    auto raw = RawConn::Connect(daemon_->socket());
    ASSERT_TRUE(raw.ok());
    // Half a request, a full one, or a burst; then close without reading.
    std::string msg = i % 3 == 0 ? std::string(R"({"jsonrpc":"2.0","id":1,"meth)")
                    : i % 3 == 1 ? Req(1, "session.list").dump() + "\n"
                                 : std::string(20, '\n') + Req(1, "daemon.methods").dump() + "\n" + Req(2, "daemon.version").dump() + "\n";
    (void)raw->Send(msg);
  }
  auto c = Client();
  ASSERT_TRUE(c.ok());
  auto pong = c->Call("daemon.ping");
  EXPECT_TRUE(pong.ok()) << pong.error().ToString();
  EXPECT_TRUE(daemon_->Alive());
}

TEST_F(DaemonE2E, TwoThousandIdleConnectionsAndTheDaemonStillServes) {
  constexpr int kIdle = 2000;
  std::vector<RawConn> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    auto raw = RawConn::Connect(daemon_->socket());
    ASSERT_TRUE(raw.ok()) << "connection " << i << ": " << raw.error().ToString();
    idle.push_back(std::move(*raw));
  }
  auto c = Client();
  ASSERT_TRUE(c.ok());
  auto pong = c->Call("daemon.ping", Json::object(), std::chrono::seconds(10));
  ASSERT_TRUE(pong.ok()) << pong.error().ToString();
  // The idle ones are real connections, not a backlog: the first and the
  // last are answered too.
  for (int i : {0, kIdle / 2, kIdle - 1}) {
    auto r = idle[static_cast<size_t>(i)].Roundtrip(Req(i, "daemon.ping"));
    ASSERT_TRUE(r.ok()) << "idle connection " << i << ": " << r.error().ToString();
    EXPECT_EQ((*r)["result"]["pong"], true);
  }
}

TEST_F(DaemonE2E, ManyConcurrentClients) {
  constexpr int kThreads = 8, kCalls = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto c = rpc::Client::Connect(daemon_->socket());
      if (!c.ok()) return;
      for (int i = 0; i < kCalls; ++i) {
        if (c->Call(i % 2 ? "daemon.ping" : "session.list", Json::object(), std::chrono::seconds(10)).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kCalls);
}

TEST_F(DaemonE2E, SigtermStopsCleanlyAndRemovesTheSocket) {
  auto idle = RawConn::Connect(daemon_->socket());  // an idle client must not hold shutdown up
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(daemon_->Terminate(), 0) << daemon_->Log();
  EXPECT_FALSE(std::filesystem::exists(daemon_->socket()));
  auto c = rpc::Client::Connect(daemon_->socket());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Code::kUnavailable);
}

TEST_F(DaemonE2E, SecondDaemonOnTheSameSocketOrStateDirIsRefused) {
  std::string log;
  int same_socket = RunDaemonToExit(dir_.path(), {"--socket", daemon_->socket(), "--state-dir",
                                                   dir_.path() + "/other-state"}, &log);
  EXPECT_EQ(same_socket, 69) << log;
  EXPECT_NE(log.find("already serving"), std::string::npos) << log;
  int same_state = RunDaemonToExit(dir_.path(), {"--socket", dir_.path() + "/other.sock", "--state-dir",
                                                  daemon_->state_dir()}, &log);
  EXPECT_EQ(same_state, 69) << log;
  EXPECT_NE(log.find("state dir"), std::string::npos) << log;
  // The first daemon is unaffected.
  auto c = Client();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Call("daemon.ping").ok());
}

TEST_F(DaemonE2E, Kill9ThenRestartReplacesTheStaleSocket) {
  std::string socket = daemon_->socket();
  daemon_->Kill9();
  ASSERT_TRUE(std::filesystem::exists(socket)) << "a killed daemon leaves its socket file behind";
  auto again = Daemon::Start(dir_.path());  // same socket, same state dir
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  daemon_ = std::move(*again);
  auto c = Client();
  ASSERT_TRUE(c.ok());
  auto list = c->Call("session.list");
  EXPECT_TRUE(list.ok()) << list.error().ToString();
}

TEST_F(DaemonE2E, SocketIsNotWorldAccessible) {
  struct stat st {};
  ASSERT_EQ(::stat(daemon_->socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0007, 0u) << std::oct << st.st_mode;
}

// Runs in the spawned CLI's child before exec: become nobody, with the
// groups given. Async-signal-safe: only system calls.
struct Identity {
  gid_t gid;
  gid_t groups[4];
  size_t ngroups;
};
int BecomeNobody(void* arg) {
  auto* id = static_cast<Identity*>(arg);
  if (::setgroups(id->ngroups, id->groups) != 0) return errno;
  if (::setgid(id->gid) != 0) return errno;
  if (::setuid(65534) != 0) return errno;
  return 0;
}

TEST(DaemonAuth, PeerCredentialsDecideWhoMayCall) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);  // nobody must reach the socket file
  // Members of "nogroup" may connect; the test plays uid nobody with and
  // without that group.
  auto d = Daemon::Start(dir.path(), {"--group", "nogroup"});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  // Open the file's mode so the kernel's SO_PEERCRED check is what decides,
  // not the file permission.
  ASSERT_EQ(::chmod((*d)->socket().c_str(), 0666), 0);

  Identity member{100, {65534}, 1};   // primary "users", supplementary nogroup
  auto allowed = RunCli((*d)->socket(), {"version"}, {}, BecomeNobody, &member);
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out << allowed.err;

  Identity outsider{100, {100}, 1};   // only "users"
  auto refused = RunCli((*d)->socket(), {"--json", "session", "ls"}, {}, BecomeNobody, &outsider);
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.out.find("permission_denied"), std::string::npos) << refused.out << refused.err;
  EXPECT_NE((*d)->Log().find("refused connection: uid 65534"), std::string::npos) << (*d)->Log();
}

}  // namespace
}  // namespace specula::testing
