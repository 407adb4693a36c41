// The MCP server's dispatch (runtime/mcp/server.h) with specula's tools
// (runtime/mcp/tools.h) over a fake daemon: lifecycle, errors, tool
// results, progress, cancellation, concurrency, and the stdio loop. No root,
// no daemon: the fake answers with the wire contract's types and checks
// every request against the daemon's own strict param decoding.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/api/wire.h"
#include "runtime/mcp/server.h"
#include "runtime/mcp/tools.h"

namespace specula::mcp {
namespace {

class FakeDaemon : public Backend {
 public:
  using Handler = std::function<Result<Json>(const Json& params)>;
  FakeDaemon() {
    On("session.create", [this](const Json& p) -> Result<Json> {
      api::CreateSessionRequest req;
      SPECULA_TRY(api::DecodeParams(p, req));
      created_with = req;
      return api::ToJson(api::CreateSessionResponse{"s1", "c0"});
    });
    On("session.show", [](const Json& p) -> Result<Json> {
      api::ShowSessionRequest req;
      SPECULA_TRY(api::DecodeParams(p, req));
      if (req.session != "s1") return Error(Code::kNotFound, "no session \"" + req.session + "\"");
      api::Session s;
      s.session = "s1";
      s.head = "c1";
      return api::ToJson(s);
    });
    On("session.destroy", [](const Json& p) -> Result<Json> {
      api::DestroySessionRequest req;
      SPECULA_TRY(api::DecodeParams(p, req));
      return api::ToJson(api::DestroySessionResponse{req.session, true});
    });
  }
  void On(const std::string& method, Handler h) {
    std::lock_guard lock(mu_);
    handlers_[method] = std::move(h);
  }
  Result<Json> Call(std::string_view method, const Json& params) override {
    Handler h;
    {
      std::lock_guard lock(mu_);
      calls.emplace_back(method, params);
      auto it = handlers_.find(std::string(method));
      if (it == handlers_.end()) return Error(Code::kUnavailable, "method not found: " + std::string(method));
      h = it->second;
    }
    return h(params);
  }
  // With `streaming` set, CallNotifying is available (as with the real
  // daemon) and a handler can send notifications through Notify.
  bool streams() const override { return streaming; }
  Result<Json> CallNotifying(std::string_view method, const Json& params,
                             const rpc::NotificationHandler& on_notification) override {
    {
      std::lock_guard lock(mu_);
      notify_ = on_notification;
    }
    auto r = Call(method, params);
    std::lock_guard lock(mu_);
    notify_ = nullptr;
    return r;
  }
  void Notify(std::string_view method, const Json& params) {
    rpc::NotificationHandler h;
    {
      std::lock_guard lock(mu_);
      h = notify_;
    }
    if (h) h(method, params);
  }
  std::vector<std::pair<std::string, Json>> Calls(const std::string& method) {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, Json>> out;
    for (const auto& c : calls) {
      if (c.first == method) out.push_back(c);
    }
    return out;
  }

  api::CreateSessionRequest created_with;
  std::vector<std::pair<std::string, Json>> calls;
  bool streaming = false;

 private:
  std::mutex mu_;
  rpc::NotificationHandler notify_;
  std::map<std::string, Handler> handlers_;
};

// Collects what the server writes.
class Output {
 public:
  Server::Writer Writer() {
    return [this](const std::string& line) {
      EXPECT_EQ(line.find('\n'), std::string::npos);
      Json j = Json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      std::lock_guard lock(mu_);
      lines_.push_back(j);
      cv_.notify_all();
    };
  }
  // The reply to request `id` (waits for it).
  Json Reply(const Json& id, std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    Json found;
    cv_.wait_for(lock, wait, [&] {
      for (const auto& l : lines_) {
        if (l.contains("id") && l["id"] == id && !l.contains("method")) {
          found = l;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::vector<Json> Lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    lines_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Json> lines_;
};

std::string Req(const Json& id, const std::string& method, const Json& params = Json::object()) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump();
}

class McpServerTest : public ::testing::Test {
 protected:
  McpServerTest() {
    options_.session = "";
    options_.create.base = "/srv/root";
    options_.create.policy = "sysadmin";
  }
  void Start(ServerOptions so = {}) {
    tools_ = std::make_unique<SpeculaTools>(daemon_, options_);
    so.version = "0.test";
    if (so.progress_interval == std::chrono::milliseconds(1000)) so.progress_interval = std::chrono::milliseconds(20);
    server_ = std::make_unique<Server>(*tools_, out_.Writer(), so);
  }
  Json Initialize(const std::string& version = "2025-06-18") {
    server_->HandleLine(Req(0, "initialize", {{"protocolVersion", version},
                                              {"capabilities", Json::object()},
                                              {"clientInfo", {{"name", "t"}, {"version", "1"}}}}));
    server_->HandleLine(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    return out_.Reply(0);
  }
  Json CallTool(const Json& id, const std::string& name, const Json& args, const Json& meta = nullptr) {
    Json params{{"name", name}, {"arguments", args}};
    if (!meta.is_null()) params["_meta"] = meta;
    server_->HandleLine(Req(id, "tools/call", params));
    return out_.Reply(id);
  }

  FakeDaemon daemon_;
  SessionOptions options_;
  Output out_;
  std::unique_ptr<SpeculaTools> tools_;
  std::unique_ptr<Server> server_;
};

TEST_F(McpServerTest, InitializeNegotiatesTheVersionAndListsTools) {
  Start();
  Json init = Initialize();
  EXPECT_EQ(init["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(init["result"]["capabilities"]["tools"]["listChanged"], false);
  EXPECT_EQ(init["result"]["serverInfo"]["name"], "specula");
  EXPECT_EQ(init["result"]["serverInfo"]["version"], "0.test");
  server_->HandleLine(Req(1, "tools/list"));
  Json list = out_.Reply(1);
  std::vector<std::string> names;
  for (const auto& t : list["result"]["tools"]) {
    names.push_back(t["name"]);
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t.dump();
    EXPECT_EQ(t["outputSchema"]["type"], "object") << t.dump();
    EXPECT_FALSE(t["description"].get<std::string>().empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"bash", "checkpoints", "diff", "rollback", "branches"}));
  EXPECT_FALSE(list["result"].contains("nextCursor"));
}

TEST_F(McpServerTest, AnOlderOrUnknownVersion) {
  Start();
  Json init = Initialize("2025-03-26");
  EXPECT_EQ(init["result"]["protocolVersion"], "2025-03-26");
  server_->HandleLine(Req(1, "tools/list"));
  for (const auto& t : out_.Reply(1)["result"]["tools"]) EXPECT_FALSE(t.contains("outputSchema"));
  daemon_.On("checkpoint.list", [](const Json&) -> Result<Json> { return Json::array(); });
  Json r = CallTool(2, "checkpoints", Json::object());
  EXPECT_FALSE(r["result"].contains("structuredContent")) << r.dump();
  EXPECT_EQ(r["result"]["isError"], false);

  // A version the server does not know: it answers with its newest.
  server_.reset();
  out_.Clear();
  Start();
  EXPECT_EQ(Initialize("1999-01-01")["result"]["protocolVersion"], "2025-06-18");
}

TEST_F(McpServerTest, ProtocolErrors) {
  Start();
  server_->HandleLine(Req(1, "ping"));  // allowed before initialize
  EXPECT_EQ(out_.Reply(1)["result"], Json::object());
  server_->HandleLine(Req(2, "tools/list"));
  EXPECT_EQ(out_.Reply(2)["error"]["code"], kInvalidRequest);
  server_->HandleLine(Req(3, "initialize", {{"capabilities", Json::object()}}));
  EXPECT_EQ(out_.Reply(3)["error"]["code"], kInvalidParams);
  Initialize();
  server_->HandleLine(Req(4, "initialize", {{"protocolVersion", "2025-06-18"}}));
  EXPECT_EQ(out_.Reply(4)["error"]["code"], kInvalidRequest);
  server_->HandleLine(Req(5, "resources/list"));
  EXPECT_EQ(out_.Reply(5)["error"]["code"], kMethodNotFound);
  EXPECT_EQ(CallTool(6, "nope", Json::object())["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(7, "bash", Json::object())["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(8, "bash", {{"command", 5}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(9, "bash", {{"command", "ls"}, {"timeout_ms", -1}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(10, "bash", {{"command", "ls"}, {"cwd", "/"}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(11, "diff", Json::object())["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(12, "diff", {{"branch", "b"}, {"checkpoint", "c"}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(13, "rollback", Json::object())["error"]["code"], kInvalidParams);
  EXPECT_EQ(CallTool(14, "branches", {{"x", 1}})["error"]["code"], kInvalidParams);
  server_->HandleLine(Req(15, "tools/call", {{"arguments", Json::object()}}));
  EXPECT_EQ(out_.Reply(15)["error"]["code"], kInvalidParams);
  server_->HandleLine(Req(16, "tools/call", {{"name", "bash"}, {"arguments", "ls"}}));
  EXPECT_EQ(out_.Reply(16)["error"]["code"], kInvalidParams);
  server_->HandleLine("{oops");
  server_->HandleLine(R"([{"jsonrpc":"2.0","id":17,"method":"ping"}])");
  server_->HandleLine(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":1})");  // no reply
  server_->HandleLine(R"({"jsonrpc":"2.0","id":99,"result":{}})");                          // a response: dropped
  server_->HandleLine("   ");
  server_->WaitIdle();
  auto lines = out_.Lines();
  ASSERT_GE(lines.size(), 2u);
  int parse = 0, invalid = 0;
  for (const auto& l : lines) {
    if (l.contains("error") && l["id"].is_null()) {
      parse += l["error"]["code"] == kParseError;
      invalid += l["error"]["code"] == kInvalidRequest;
    }
  }
  EXPECT_EQ(parse, 1);
  EXPECT_EQ(invalid, 1);
  // Every request got exactly one reply; notifications and responses none.
  size_t replies = 0;
  for (const auto& l : lines) replies += !l.contains("method");
  EXPECT_EQ(replies, 17u + 1u /* initialize id 0 */ + 2u /* the two id-null errors */ - 1u /* id 17 was a batch */);
  // The server is still alive.
  server_->HandleLine(Req(18, "ping"));
  EXPECT_EQ(out_.Reply(18)["result"], Json::object());
}

TEST_F(McpServerTest, BashCommitsInTheCreatedSession) {
  Start();
  Initialize();
  api::CommitResponse resp;
  resp.hit = true;
  resp.branch = "b7";
  resp.exit_code = 3;
  resp.stdout_text = "out\n";
  resp.stderr_text = "err\n";
  resp.truncated = true;
  resp.duration_ms = 250;
  resp.saved_ms = 240;
  resp.head = "c2";
  resp.flags = {"nondeterministic"};
  resp.lossy_effects = {api::LossyEffect{"sysctl", "write", "/proc/sys/vm/swappiness", "/proc/sys/vm", true, "60 -> 10"}};
  daemon_.On("action.commit", [&](const Json& p) -> Result<Json> {
    api::CommitRequest req;
    SPECULA_TRY(api::DecodeParams(p, req));  // the daemon's strict decoding
    EXPECT_EQ(req.session, "s1");
    EXPECT_EQ(req.command, "make test");
    EXPECT_EQ(req.timeout_ms, 5000u);
    return api::ToJson(resp);
  });
  Json r = CallTool("a", "bash", {{"command", "make test"}, {"timeout_ms", 5000}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["isError"], false);
  EXPECT_EQ(r["result"]["structuredContent"], api::ToJson(resp));
  std::string text = r["result"]["content"][0]["text"];
  EXPECT_EQ(r["result"]["content"][0]["type"], "text");
  for (const char* want : {"stdout:\nout\n", "stderr:\nerr\n", "exit code 3", "hit", "240 ms saved", "checkpoint c2",
                           "truncated", "/proc/sys/vm/swappiness", "nondeterministic"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << " in " << text;
  }
  EXPECT_EQ(daemon_.created_with.base, "/srv/root");
  EXPECT_EQ(daemon_.created_with.policy, "sysadmin");
  EXPECT_EQ(daemon_.Calls("session.create").size(), 1u);
  // Only the session it created is destroyed.
  EXPECT_TRUE(tools_->created());
  ASSERT_TRUE(tools_->DestroyCreated().ok());
  ASSERT_EQ(daemon_.Calls("session.destroy").size(), 1u);
  EXPECT_EQ(daemon_.Calls("session.destroy")[0].second["session"], "s1");
}

// The session's speculator learns the MCP client as its agent: clientInfo's
// name, unless --agent named one; nothing without speculation.
TEST_F(McpServerTest, TheClientsNameIsTheSpeculationsAgent) {
  daemon_.On("action.commit", [](const Json&) -> Result<Json> { return api::ToJson(api::CommitResponse{}); });
  for (const std::string given : {"", "mine"}) {
    options_.create.speculation = api::SpeculationConfig{.speculator = "builtin", .k = 3, .agent = given};
    Start();
    Initialize();  // clientInfo.name "t"
    ASSERT_TRUE(CallTool("a" + given, "bash", {{"command", "true"}}).contains("result"));
    ASSERT_TRUE(daemon_.created_with.speculation.has_value());
    EXPECT_EQ(daemon_.created_with.speculation->agent, given.empty() ? "t" : given);
  }
  options_.create.speculation.reset();
  Start();
  Initialize();
  ASSERT_TRUE(CallTool("b", "bash", {{"command", "true"}}).contains("result"));
  EXPECT_FALSE(daemon_.created_with.speculation.has_value());
}

TEST_F(McpServerTest, DaemonErrorsAreToolErrorsWithTheHint) {
  Start();
  Initialize();
  daemon_.On("action.commit", [](const Json&) -> Result<Json> {
    return Error(Code::kResourceExhausted, "branch limit reached").WithHint("raise speculation.max_branches");
  });
  Json r = CallTool(1, "bash", {{"command", "ls"}});
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_FALSE(r["result"].contains("structuredContent"));
  std::string text = r["result"]["content"][0]["text"];
  EXPECT_NE(text.find("resource_exhausted"), std::string::npos) << text;
  EXPECT_NE(text.find("branch limit reached"), std::string::npos) << text;
  EXPECT_NE(text.find("hint: raise speculation.max_branches"), std::string::npos) << text;
  // Unknown daemon method (an older daemon): still a tool error.
  Json d = CallTool(2, "diff", {{"checkpoint", "c1"}});
  EXPECT_EQ(d["result"]["isError"], true);
}

TEST_F(McpServerTest, ADaemonDownAtStartIsRetriedAtTheFirstCall) {
  bool up = false;
  daemon_.On("session.create", [&](const Json&) -> Result<Json> {
    if (!up) return Error(Code::kUnavailable, "speculad is not running").WithHint("start it");
    return api::ToJson(api::CreateSessionResponse{"s9", "c0"});
  });
  daemon_.On("branch.list", [](const Json& p) -> Result<Json> {
    api::ListBranchesRequest req;
    SPECULA_TRY(api::DecodeParams(p, req));
    EXPECT_EQ(req.session, "s9");
    api::BranchSummary b;
    b.branch = "b1";
    b.session = "s9";
    b.state = "done";
    b.command = "ls";
    b.result = api::BranchResult{};
    return api::ToJson(std::vector<api::BranchSummary>{b});
  });
  Start();
  EXPECT_FALSE(tools_->Session().ok());
  Initialize();
  Json r = CallTool(1, "branches", Json::object());
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("hint: start it"), std::string::npos);
  up = true;
  r = CallTool(2, "branches", Json::object());
  EXPECT_EQ(r["result"]["isError"], false) << r.dump();
  EXPECT_EQ(r["result"]["structuredContent"]["session"], "s9");
  EXPECT_EQ(r["result"]["structuredContent"]["branches"][0]["branch"], "b1");
}

TEST_F(McpServerTest, AttachedSessionIsCheckedAndNeverDestroyed) {
  options_.session = "s1";
  daemon_.On("session.rollback", [](const Json& p) -> Result<Json> {
    api::RollbackRequest req;
    SPECULA_TRY(api::DecodeParams(p, req));
    return api::ToJson(api::RollbackResponse{req.session, req.checkpoint});
  });
  daemon_.On("checkpoint.diff", [](const Json& p) -> Result<Json> {
    api::DiffCheckpointRequest req;
    SPECULA_TRY(api::DecodeParams(p, req));
    return api::ToJson(api::CheckpointDiff{req.checkpoint, "c0",
                                           {api::DiffFile{"/etc/motd", "changed", "file", "--- a\n+++ b\n"}}});
  });
  Start();
  Initialize();
  Json r = CallTool(1, "rollback", {{"checkpoint", "c0"}});
  EXPECT_EQ(r["result"]["structuredContent"], (Json{{"session", "s1"}, {"head", "c0"}})) << r.dump();
  Json d = CallTool(2, "diff", {{"checkpoint", "c1"}});
  EXPECT_EQ(d["result"]["structuredContent"]["files"][0]["path"], "/etc/motd") << d.dump();
  EXPECT_NE(d["result"]["content"][0]["text"].get<std::string>().find("changed file /etc/motd"), std::string::npos);
  EXPECT_FALSE(tools_->created());
  EXPECT_TRUE(tools_->DestroyCreated().ok());
  EXPECT_TRUE(daemon_.Calls("session.destroy").empty());
  EXPECT_TRUE(daemon_.Calls("session.create").empty());

  SessionOptions missing;
  missing.session = "s404";
  SpeculaTools other(daemon_, missing);
  auto s = other.Session();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kNotFound);
}

// A gate a fake commit waits at, opened by the test.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return open; });
  }
};

TEST(McpProgress, MessageCarriesTheLastLineCutOnACharacter) {
  EXPECT_EQ(ProgressMessage("bash", 3, ""), "bash: running for 3 s");
  EXPECT_EQ(ProgressMessage("bash", 12, "[ 40%] Linking"), "bash: running for 12 s; output: [ 40%] Linking");
  // 199 ASCII bytes, then a 2-byte character straddling byte 200: cut before it.
  std::string line(199, 'x');
  line += "\xc3\xa9tail";
  std::string msg = ProgressMessage("bash", 1, line);
  EXPECT_EQ(msg, "bash: running for 1 s; output: " + std::string(199, 'x'));
}

TEST_F(McpServerTest, ProgressCarriesTheLatestOutputWhenTheDaemonStreams) {
  daemon_.streaming = true;
  Gate gate;
  std::atomic<bool> streamed{false}, asked_to_stream{false};
  daemon_.On("action.commit", [&](const Json& p) -> Result<Json> {
    api::CommitRequest req;
    SPECULA_TRY(api::DecodeParams(p, req));  // the daemon's own strict decoding
    asked_to_stream = req.stream;
    if (req.stream) {
      api::OutputChunk c{"s1", "b9", "stdout", "step 1\nstep 2 of 3\n"};
      daemon_.Notify(api::OutputChunk::kMethod, api::ToJson(c));
      streamed = true;
      gate.Wait();
    }
    api::CommitResponse r;
    r.exit_code = 0;
    r.branch = "b9";
    r.stdout_text = "step 1\nstep 2 of 3\ndone\n";
    r.head = "c3";
    return api::ToJson(r);
  });
  Start();
  Initialize();
  server_->HandleLine(Req(1, "tools/call", {{"name", "bash"}, {"arguments", {{"command", "make"}}},
                                            {"_meta", {{"progressToken", "tok"}}}}));
  // Waits (no time is asserted) for a progress note that shows the output.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool shown = false;
  while (!shown && std::chrono::steady_clock::now() < deadline) {
    for (const auto& l : out_.Lines()) {
      if (l.value("method", "") == "notifications/progress" &&
          l["params"].value("message", "").find("; output: step 2 of 3") != std::string::npos) {
        shown = true;
      }
    }
    if (!shown) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(streamed.load());
  EXPECT_TRUE(shown) << "no progress message carried the output";
  gate.Open();
  Json r = out_.Reply(1);
  EXPECT_EQ(r["result"]["isError"], false);
  // The result is the whole output, as without streaming.
  EXPECT_EQ(r["result"]["structuredContent"]["stdout"], "step 1\nstep 2 of 3\ndone\n");
  // Without a progress token nobody would see live output: no stream.
  Json quiet = CallTool(2, "bash", {{"command", "make"}});
  EXPECT_EQ(quiet["result"]["isError"], false);
  EXPECT_FALSE(asked_to_stream.load());
}

TEST_F(McpServerTest, ProgressWhileALongCommandRunsAndPingIsAnsweredMeanwhile) {
  Gate gate;
  daemon_.On("action.commit", [&](const Json&) -> Result<Json> {
    gate.Wait();
    api::CommitResponse r;
    r.exit_code = 0;
    r.head = "c3";
    return api::ToJson(r);
  });
  Start();
  Initialize();
  server_->HandleLine(Req(1, "tools/call", {{"name", "bash"}, {"arguments", {{"command", "sleep 60"}}},
                                            {"_meta", {{"progressToken", "tok"}}}}));
  server_->HandleLine(Req(2, "ping"));
  EXPECT_EQ(out_.Reply(2)["result"], Json::object());  // while the call runs
  EXPECT_EQ(server_->in_flight(), 1u);
  // Wait for three progress notifications.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto progress = [&] {
    std::vector<Json> p;
    for (const auto& l : out_.Lines()) {
      if (l.value("method", "") == "notifications/progress") p.push_back(l["params"]);
    }
    return p;
  };
  while (progress().size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  gate.Open();
  Json r = out_.Reply(1);
  EXPECT_EQ(r["result"]["isError"], false);
  auto lines = out_.Lines();
  auto notes = progress();
  ASSERT_GE(notes.size(), 3u);
  double last = -1;
  for (const auto& n : notes) {
    EXPECT_EQ(n["progressToken"], "tok");
    EXPECT_GT(n["progress"].get<double>(), last);
    last = n["progress"];
  }
  // None after the reply.
  bool replied = false;
  for (const auto& l : lines) {
    if (l.contains("id") && l["id"] == 1) {
      replied = true;
    } else if (replied) {
      EXPECT_NE(l.value("method", ""), "notifications/progress");
    }
  }
  // A call without a token gets no progress.
  size_t before = notes.size();
  gate.open = false;
  std::thread open_later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    gate.Open();
  });
  CallTool(3, "bash", {{"command", "sleep 1"}});
  open_later.join();
  EXPECT_EQ(progress().size(), before);
}

TEST_F(McpServerTest, ACancelledCallGetsNoReply) {
  Gate gate;
  daemon_.On("action.commit", [&](const Json&) -> Result<Json> {
    gate.Wait();
    return api::ToJson(api::CommitResponse{});
  });
  Start();
  Initialize();
  server_->HandleLine(Req("x", "tools/call", {{"name", "bash"}, {"arguments", {{"command", "sleep 9"}}}}));
  // The same id again while it runs is refused.
  server_->HandleLine(Req("x", "tools/call", {{"name", "bash"}, {"arguments", {{"command", "true"}}}}));
  EXPECT_EQ(out_.Reply("x")["error"]["code"], kInvalidRequest);
  server_->HandleLine(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x","reason":"t"}})");
  gate.Open();
  server_->WaitIdle();
  size_t replies_to_x = 0;
  for (const auto& l : out_.Lines()) replies_to_x += l.contains("id") && l["id"] == "x";
  EXPECT_EQ(replies_to_x, 1u);  // only the refusal
}

TEST_F(McpServerTest, CallsRunConcurrentlyUpToTheLimit) {
  Gate gate;
  std::atomic<int> running{0}, peak{0};
  daemon_.On("checkpoint.list", [&](const Json&) -> Result<Json> {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {}
    gate.Wait();
    --running;
    return Json::array();
  });
  ServerOptions so;
  so.max_in_flight = 3;
  Start(so);
  Initialize();
  std::thread feeder([&] {
    for (int i = 1; i <= 5; ++i) {
      server_->HandleLine(Req(i, "tools/call", {{"name", "checkpoints"}, {"arguments", Json::object()}}));
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (running.load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(server_->in_flight(), 3u);  // the reader waits for a slot
  gate.Open();
  feeder.join();
  server_->WaitIdle();
  EXPECT_EQ(peak.load(), 3);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(out_.Reply(i)["result"]["isError"], false) << i;
}

TEST_F(McpServerTest, ServeLinesReadsAPipeUntilEof) {
  Start();
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  std::vector<Json> got;
  Server server(*tools_, FdWriter(out[1]), ServerOptions{});
  std::thread writer([&] {
    std::string data = Req(1, "initialize", {{"protocolVersion", "2025-06-18"}}) + "\r\n";
    data += std::string(kMaxMessageBytes + 10, 'x') + "\n";  // oversized: one error, then on
    data += Req(2, "ping");                                   // no trailing newline
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(in[1], data.data() + off, std::min<size_t>(data.size() - off, 7000));
      ASSERT_GT(n, 0);
      off += static_cast<size_t>(n);
    }
    ::close(in[1]);
  });
  std::thread reader([&] {
    std::string buf;
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(out[0], chunk, sizeof(chunk))) > 0) buf.append(chunk, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = buf.find('\n', start)) != std::string::npos) {
      got.push_back(Json::parse(buf.substr(start, nl - start)));
      start = nl + 1;
    }
  });
  EXPECT_EQ(ServeLines(server, in[0], -1), StopReason::kEof);
  writer.join();
  ::close(out[1]);
  reader.join();
  ::close(in[0]);
  ::close(out[0]);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]["id"], 1);
  EXPECT_EQ(got[1]["error"]["code"], kInvalidRequest);
  EXPECT_EQ(got[2]["id"], 2);
}

}  // namespace
}  // namespace specula::mcp
