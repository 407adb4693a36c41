// `specula mcp` driven by real MCP clients against a real speculad: the
// official TypeScript SDK client (node/mcp_e2e.cjs) and the MCP Inspector's
// CLI, both installed by scripts/setup.sh into SPECULA_MCP_NODE_DIR
// (default /opt/specula/mcp-node). Also raw stdio checks the SDK cannot
// make: malformed lines, and the session's fate on EOF.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "runtime/api/wire.h"
#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

std::string NodeDir() {
  const char* env = std::getenv("SPECULA_MCP_NODE_DIR");
  return env && *env ? env : "/opt/specula/mcp-node";
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

class McpE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    StartDaemon();
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }
  void StartDaemon() {
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
  }
  std::vector<api::Session> Sessions() {
    auto c = rpc::Client::Connect(daemon_->socket());
    EXPECT_TRUE(c.ok());
    if (!c.ok()) return {};
    auto list = c->Call(api::ListSessionsRequest{});
    EXPECT_TRUE(list.ok()) << list.error().ToString();
    return list.ok() ? *list : std::vector<api::Session>{};
  }
  void RequireNode() {
    ASSERT_TRUE(Exists(NodeDir() + "/node_modules/@modelcontextprotocol/sdk/package.json"))
        << "the MCP SDK is not installed in " << NodeDir() << ": run scripts/setup.sh";
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(McpE2E, TheTypeScriptSdkClientDrivesEveryTool) {
  RequireNode();
  std::string scratch = dir_.path() + "/handshake";
  std::filesystem::create_directories(scratch);
  // A path under the base (the host's /) that only the session may see.
  std::string target = "/opt/specula-mcp-e2e-" + std::to_string(::getpid()) + "/file";
  ASSERT_FALSE(Exists(target));
  SpawnOptions node;
  node.argv = {"node", SPECULA_SOURCE_DIR "/tests/mcp/node/mcp_e2e.cjs"};
  node.env_set = {std::string("SPECULA_CLI=") + SPECULA_CLI_PATH, "SPECULA_SOCKET=" + daemon_->socket(),
                  "SPECULA_MCP_NODE_DIR=" + NodeDir(), "SPECULA_E2E_DIR=" + scratch, "SPECULA_E2E_PATH=" + target};
  node.timeout = std::chrono::seconds(300);
  auto run = std::async(std::launch::async, [&] { return Spawn(node); });
  // The script asks for the daemon to go away and come back.
  auto wait_for = [&](const std::string& name) {
    while (run.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      if (Exists(scratch + "/" + name)) return true;
    }
    return false;
  };
  if (wait_for("stop-daemon")) {
    EXPECT_EQ(daemon_->Terminate(), 0);
    std::ofstream(scratch + "/daemon-stopped").put('\n');
    if (wait_for("start-daemon")) {
      StartDaemon();  // same socket, same state dir: the session is found again
      std::ofstream(scratch + "/daemon-started").put('\n');
    }
  }
  auto r = run.get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0) << r->out << "\n" << r->err;
  EXPECT_NE(r->out.find("ALL OK"), std::string::npos) << r->out << "\n" << r->err;
  std::cout << r->out;
  EXPECT_FALSE(Exists(target)) << "a layer-target session wrote the host";
  // The server destroyed the session it created when the client closed it.
  std::string session;
  std::ifstream(scratch + "/session") >> session;
  EXPECT_FALSE(session.empty());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto has_session = [&] {
    for (const auto& s : Sessions()) {
      if (s.session == session) return true;
    }
    return false;
  };
  while (has_session() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(has_session()) << "session " << session << " outlived its MCP server";
}

// Streamable HTTP (`specula mcp --listen`): the SDK's HTTP client drives
// the tools, progress comes as SSE, and what must not get through (no or a
// wrong token, a foreign Origin, no session id, a second initialize, a
// deleted session) does not; SIGTERM destroys the session it created.
TEST_F(McpE2E, TheSdkClientOverStreamableHttp) {
  RequireNode();
  std::string scratch = dir_.path() + "/http";
  std::filesystem::create_directories(scratch);
  const size_t before = Sessions().size();
  SpawnOptions node;
  node.argv = {"node", SPECULA_SOURCE_DIR "/tests/mcp/node/mcp_http_e2e.cjs"};
  node.env_set = {std::string("SPECULA_CLI=") + SPECULA_CLI_PATH, "SPECULA_SOCKET=" + daemon_->socket(),
                  "SPECULA_MCP_NODE_DIR=" + NodeDir(), "SPECULA_E2E_DIR=" + scratch};
  node.timeout = std::chrono::seconds(180);
  auto r = Spawn(node);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0) << r->out << "\n" << r->err;
  EXPECT_NE(r->out.find("all HTTP checks passed"), std::string::npos) << r->out << "\n" << r->err;
  std::cout << r->out;
  EXPECT_EQ(Sessions().size(), before) << "the HTTP server's session outlived it";
}

TEST_F(McpE2E, TheInspectorCliListsAndCallsTools) {
  RequireNode();
  std::string inspector = NodeDir() + "/node_modules/.bin/mcp-inspector";
  ASSERT_TRUE(Exists(inspector)) << "run scripts/setup.sh";
  auto inspect = [&](std::vector<std::string> args) {
    SpawnOptions o;
    o.argv = {inspector, "--cli", SPECULA_CLI_PATH, "--socket", daemon_->socket(), "mcp"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.env_set = {"HOME=" + dir_.path(), "MCP_CATALOG_PATH=" + dir_.path() + "/catalog.json"};
    o.timeout = std::chrono::seconds(120);
    auto r = Spawn(o);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : SpawnResult{};
  };
  auto list = inspect({"--method", "tools/list"});
  ASSERT_EQ(list.exit_code, 0) << list.out << list.err;
  Json tools = Json::parse(list.out, nullptr, false);
  ASSERT_FALSE(tools.is_discarded()) << list.out;
  std::vector<std::string> names;
  for (const auto& t : tools["tools"]) names.push_back(t["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"bash", "checkpoints", "diff", "rollback", "branches"}));
  auto call = inspect({"--method", "tools/call", "--tool-name", "bash", "--tool-arg", "command=echo from-inspector"});
  ASSERT_EQ(call.exit_code, 0) << call.out << call.err;
  Json result = Json::parse(call.out, nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << call.out;
  EXPECT_EQ(result["structuredContent"]["stdout"], "from-inspector\n") << call.out;
  EXPECT_EQ(result["isError"], false) << call.out;
  // Each inspector run was its own server with its own session, destroyed on exit.
  EXPECT_TRUE(Sessions().empty());
}

// Raw stdio: what the SDK never sends. The server answers every malformed
// line with its JSON-RPC error and goes on; on EOF it destroys its session;
// --keep-session and --session leave sessions alone.
TEST_F(McpE2E, RawStdioErrorsAndSessionLifetime) {
  auto line = [](const Json& j) { return j.dump() + "\n"; };
  Json init{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
            {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", Json::object()},
                        {"clientInfo", {{"name", "raw"}, {"version", "0"}}}}}};
  std::string in = line(init) + "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n" + "not json\n" +
                   "[1,2]\n" + line({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "nope"}}) +
                   line({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"}, {"params", {{"name", "bash"}}}}) +
                   line({{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/call"},
                         {"params", {{"name", "bash"}, {"arguments", {{"command", "echo hi"}}}}}});
  SpawnOptions o;
  o.argv = {SPECULA_CLI_PATH, "--socket", daemon_->socket(), "mcp"};
  o.stdin_data = in;
  o.timeout = std::chrono::seconds(120);
  auto r = Spawn(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  std::vector<Json> out;
  std::istringstream lines(r->out);
  for (std::string l; std::getline(lines, l);) {
    Json j = Json::parse(l, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "stdout must carry only MCP messages: " << l;
    out.push_back(j);
  }
  ASSERT_EQ(out.size(), 6u) << r->out;
  std::map<Json, Json> by_id;
  std::vector<int> id_null_codes;
  for (const auto& j : out) {
    if (j["id"].is_null()) id_null_codes.push_back(j["error"]["code"]);
    else by_id[j["id"]] = j;
  }
  EXPECT_EQ(id_null_codes, (std::vector<int>{-32700, -32600}));
  EXPECT_EQ(by_id[1]["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(by_id[2]["error"]["code"], -32601);
  EXPECT_EQ(by_id[3]["error"]["code"], -32602);
  EXPECT_EQ(by_id[4]["result"]["structuredContent"]["stdout"], "hi\n") << by_id[4].dump();
  EXPECT_NE(r->err.find("destroyed the session it created"), std::string::npos) << r->err;
  EXPECT_TRUE(Sessions().empty());

  // --keep-session keeps it; --session attaches to it and never destroys it.
  o.argv = {SPECULA_CLI_PATH, "--socket", daemon_->socket(), "mcp", "--keep-session", "--name", "kept"};
  o.stdin_data = line(init);
  r = Spawn(o);
  ASSERT_TRUE(r.ok());
  auto sessions = Sessions();
  ASSERT_EQ(sessions.size(), 1u) << r->err;
  std::string kept = sessions[0].session;
  EXPECT_EQ(sessions[0].name, "kept");
  o.argv = {SPECULA_CLI_PATH, "--socket", daemon_->socket(), "mcp", "--session", kept};
  o.stdin_data = line(init) + line({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
                                    {"params", {{"name", "bash"}, {"arguments", {{"command", "echo attached"}}}}}});
  r = Spawn(o);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->out.find("attached\\n"), std::string::npos) << r->out << r->err;
  ASSERT_EQ(Sessions().size(), 1u);
  EXPECT_EQ(Sessions()[0].checkpoints, 2u);
  // An unknown session is refused at start (exit 1), not at the first call.
  o.argv = {SPECULA_CLI_PATH, "--socket", daemon_->socket(), "mcp", "--session", "s-missing"};
  r = Spawn(o);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("s-missing"), std::string::npos) << r->err;
}

// SIGTERM while the client keeps stdin open (what a client does when the
// server does not exit on EOF): the server destroys its session and exits 0.
TEST_F(McpE2E, SigtermDestroysTheCreatedSession) {
  int in[2], out[2];
  ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  std::string socket = daemon_->socket();  // no allocation after fork
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execl(SPECULA_CLI_PATH, SPECULA_CLI_PATH, "--socket", socket.c_str(), "mcp", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  Json init{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"protocolVersion", "2025-06-18"}}}};
  std::string line = init.dump() + "\n";
  ASSERT_EQ(::write(in[1], line.data(), line.size()), static_cast<ssize_t>(line.size()));
  std::string reply;
  char c;
  while (reply.find('\n') == std::string::npos && ::read(out[0], &c, 1) == 1) reply += c;
  EXPECT_NE(reply.find("protocolVersion"), std::string::npos) << reply;
  EXPECT_EQ(Sessions().size(), 1u);  // created at start
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(Sessions().empty());
  ::close(in[1]);
  ::close(out[0]);
}

// With no daemon at all the server still starts, answers, and reports the
// daemon's absence as a tool error with the hint.
TEST(McpNoDaemon, ToolErrorsCarryTheHint) {
  TempDir dir;
  std::string socket = dir.path() + "/none.sock";
  Json init{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"protocolVersion", "2025-06-18"}}}};
  Json call{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
            {"params", {{"name", "checkpoints"}, {"arguments", Json::object()}}}};
  SpawnOptions o;
  o.argv = {SPECULA_CLI_PATH, "--socket", socket, "mcp"};
  o.stdin_data = init.dump() + "\n" + call.dump() + "\n";
  auto r = Spawn(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  std::istringstream lines(r->out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  Json reply = Json::parse(second, nullptr, false);
  ASSERT_FALSE(reply.is_discarded()) << r->out;
  EXPECT_EQ(reply["result"]["isError"], true);
  std::string text = reply["result"]["content"][0]["text"];
  EXPECT_NE(text.find("speculad is not running"), std::string::npos) << text;
  EXPECT_NE(text.find("hint: start it with `speculad --socket " + socket), std::string::npos) << text;
}

}  // namespace
}  // namespace specula::testing
