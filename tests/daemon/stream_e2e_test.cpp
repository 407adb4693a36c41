// Streaming output (docs/api.md "Streaming output") through the real
// speculad: action.commit with stream: true sends action.output
// notifications on the caller's connection before its reply; they add up
// to the reply's text; a hit sends its whole output; a client without
// stream sees nothing new; a client that leaves mid-stream does not hurt
// the daemon; `specula run` prints streamed output once, `--json` only the
// reply. Assertions are on order and content, never on durations.
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

Json ParseOut(const SpawnResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  return j;
}

Json CommitLine(int id, const std::string& session, const std::string& command, bool stream) {
  Json params{{"session", session}, {"command", command}};
  if (stream) params["stream"] = true;
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "action.commit"}, {"params", params}};
}

// Every line a connection gets up to and including the reply to `id`.
std::vector<Json> ReadUntilReply(RawConn& conn, int id) {
  std::vector<Json> lines;
  for (;;) {
    auto line = conn.ReadLine(std::chrono::seconds(60));
    EXPECT_TRUE(line.ok() && line->has_value()) << "connection ended before the reply";
    if (!line.ok() || !line->has_value()) return lines;
    Json j = Json::parse(**line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << **line;
    lines.push_back(j);
    if (j.contains("id") && j["id"] == id) return lines;
  }
}

class StreamE2E : public ::testing::Test {
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
  SpawnResult Cli(std::vector<std::string> args) { return RunCli(daemon_->socket(), std::move(args)); }
  std::string CreateSession(const std::string& name) {
    auto r = Cli({"--json", "session", "create", "--name", name});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return ParseOut(r).value("session", "");
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(StreamE2E, ChunksArriveBeforeTheReplyAndAddUpToIt) {
  std::string s = CreateSession("stream");
  ASSERT_FALSE(s.empty());
  auto conn = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(conn.ok());
  // A multi-byte character too: chunks are cut on character boundaries.
  const std::string cmd = "echo 'one é'; sleep 2; echo two; echo err >&2";
  ASSERT_TRUE(conn->Send(CommitLine(1, s, cmd, true).dump() + "\n").ok());
  std::vector<Json> lines = ReadUntilReply(*conn, 1);
  ASSERT_GE(lines.size(), 2u);
  const Json& reply = lines.back();
  ASSERT_TRUE(reply.contains("result")) << reply.dump();
  const Json& r = reply["result"];
  EXPECT_EQ(r["hit"], false);
  EXPECT_EQ(r["stdout"], "one é\ntwo\n");
  EXPECT_EQ(r["stderr"], "err\n");

  // The first line is a chunk, not the reply: the output came while the
  // command ran, and the line printed before the sleep came on its own.
  ASSERT_EQ(lines.front().value("method", ""), "action.output") << lines.front().dump();
  EXPECT_FALSE(lines.front().contains("id"));
  EXPECT_EQ(lines.front()["params"]["stream"], "stdout");
  EXPECT_EQ(lines.front()["params"]["data"], "one é\n");
  std::string out, err;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const Json& n = lines[i];
    ASSERT_EQ(n.value("method", ""), "action.output") << n.dump();
    const Json& p = n["params"];
    EXPECT_EQ(p["session"], s);
    EXPECT_EQ(p["branch"], r["branch"]);
    (p["stream"] == "stderr" ? err : out) += p["data"].get<std::string>();
  }
  EXPECT_EQ(out, r["stdout"].get<std::string>());
  EXPECT_EQ(err, r["stderr"].get<std::string>());

  // Without stream: the reply alone, as before.
  ASSERT_TRUE(conn->Send(CommitLine(2, s, "echo quiet", false).dump() + "\n").ok());
  std::vector<Json> plain = ReadUntilReply(*conn, 2);
  ASSERT_EQ(plain.size(), 1u) << plain.front().dump();
  EXPECT_EQ(plain[0]["result"]["stdout"], "quiet\n");
}

TEST_F(StreamE2E, AHitSendsItsWholeOutputBeforeTheReply) {
  std::string s = CreateSession("stream-hit");
  const std::string cmd = "echo speculated; echo also >&2";
  auto spec = Cli({"--json", "spec", s, "--", cmd});
  ASSERT_EQ(spec.exit_code, 0) << spec.err;
  std::string branch = ParseOut(spec)["branch"];
  auto conn = RawConn::Connect(daemon_->socket());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn->Send(CommitLine(7, s, cmd, true).dump() + "\n").ok());
  std::vector<Json> lines = ReadUntilReply(*conn, 7);
  ASSERT_FALSE(lines.empty());
  const Json& r = lines.back()["result"];
  ASSERT_EQ(r["hit"], true) << lines.back().dump();
  EXPECT_EQ(r["branch"], branch);
  // One chunk per non-empty stream, each the whole text, then the reply.
  ASSERT_EQ(lines.size(), 3u);
  Json out = lines[0]["params"], err = lines[1]["params"];
  EXPECT_EQ(out["stream"], "stdout");
  EXPECT_EQ(out["data"], "speculated\n");
  EXPECT_EQ(out["branch"], branch);
  EXPECT_EQ(err["stream"], "stderr");
  EXPECT_EQ(err["data"], "also\n");
}

TEST_F(StreamE2E, RunPrintsTheOutputOnceAndJsonOnlyTheReply) {
  std::string s = CreateSession("stream-cli");
  auto run = Cli({"run", s, "--", "echo one; sleep 1; echo two; echo err >&2; exit 3"});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "one\ntwo\n");
  EXPECT_EQ(run.err, "err\n");
  // A command with no output prints nothing.
  auto quiet = Cli({"run", s, "--", "true"});
  EXPECT_EQ(quiet.exit_code, 0);
  EXPECT_EQ(quiet.out, "");
  // --json: one line, the reply, as before (the whole stdout is one object).
  auto json = Cli({"--json", "run", s, "--", "echo one; sleep 1; echo two"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  Json j = ParseOut(json);
  EXPECT_EQ(j["stdout"], "one\ntwo\n");
  EXPECT_EQ(json.out.find("one\ntwo"), std::string::npos) << "raw output leaked next to the JSON: " << json.out;
}

TEST_F(StreamE2E, AClientLeavingMidStreamLeavesTheDaemonServing) {
  std::string s = CreateSession("stream-gone");
  const std::string cmd = "echo first; sleep 1; for i in $(seq 1 2000); do echo line $i; done";
  {
    auto conn = RawConn::Connect(daemon_->socket());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn->Send(CommitLine(1, s, cmd, true).dump() + "\n").ok());
    auto first = conn->ReadLine(std::chrono::seconds(60));
    ASSERT_TRUE(first.ok() && first->has_value());
    EXPECT_EQ(Json::parse(**first).value("method", ""), "action.output");
  }  // gone while the command still prints
  // The commit is authoritative: it completes and becomes the head.
  bool committed = false;
  for (int i = 0; i < 300 && !committed; ++i) {
    Json log = ParseOut(Cli({"--json", "log", s}));
    for (const auto& c : log) committed |= c["command"] == cmd;
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(committed);
  ASSERT_TRUE(daemon_->Alive());
  // And the next streaming commit is served in full.
  auto next = Cli({"run", s, "--", "echo still; echo serving"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(next.out, "still\nserving\n");
  auto c = rpc::Client::Connect(daemon_->socket());
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Call(api::PingRequest{}).ok());
}

}  // namespace
}  // namespace specula::testing
