// The chat-completions client against a loopback HTTP server started by the
// test: tool_calls parsing, request shape, HTTP errors, timeouts, cancellation.
#include "agents/openai_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"

namespace specula::agents {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// A one-thread HTTP/1.1 server on 127.0.0.1:<ephemeral>. Each request gets
// the reply produced by `respond` (status, body); `delay` holds the reply
// back (until the server stops) to provoke timeouts and cancellation.
class LoopbackServer {
 public:
  using Responder = std::function<std::pair<int, std::string>(const Json& request)>;
  LoopbackServer(Responder respond, std::chrono::milliseconds delay = 0ms)
      : respond_(std::move(respond)), delay_(delay) {
    listen_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_.get(), 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  Json last_request() {
    std::lock_guard l(mu_);
    return last_;
  }
  std::string last_headers() {
    std::lock_guard l(mu_);
    return headers_;
  }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      std::string req;
      char buf[4096];
      size_t body_at = std::string::npos, need = 0;
      while (!stop_) {
        pollfd q{c.get(), POLLIN, 0};
        if (::poll(&q, 1, 20) <= 0) continue;
        ssize_t k = ::recv(c.get(), buf, sizeof buf, 0);
        if (k <= 0) break;
        req.append(buf, static_cast<size_t>(k));
        if (body_at == std::string::npos && (body_at = req.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          auto cl = req.find("Content-Length: ");
          need = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
        }
        if (body_at != std::string::npos && req.size() >= body_at + need) break;
      }
      if (body_at == std::string::npos) continue;
      Json j = Json::parse(req.substr(body_at), nullptr, false);
      {
        std::lock_guard l(mu_);
        last_ = j;
        headers_ = req.substr(0, body_at);
      }
      ++requests_;
      auto until = std::chrono::steady_clock::now() + delay_;
      while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
      auto [status, body] = respond_(j);
      std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n"
                         "Content-Length: " + std::to_string(body.size()) +
                         "\r\nConnection: close\r\n\r\n" + body;
      (void)!::send(c.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
    }
  }

  Responder respond_;
  std::chrono::milliseconds delay_;
  UniqueFd listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  Json last_;
  std::string headers_;
  std::thread thread_;
};

std::pair<int, std::string> ToolCallReply(const std::string& command) {
  Json args = {{"command", command}};
  Json r = {{"id", "chatcmpl-1"},
            {"choices",
             {{{"index", 0},
               {"finish_reason", "tool_calls"},
               {"message",
                {{"role", "assistant"},
                 {"content", nullptr},
                 {"tool_calls",
                  {{{"id", "call_abc"},
                    {"type", "function"},
                    {"function", {{"name", "bash"}, {"arguments", args.dump()}}}}}}}}}}},
            {"usage", {{"total_tokens", 321}}}};
  return {200, r.dump()};
}

OpenAIConfig Config(const LoopbackServer& s) {
  OpenAIConfig c;
  c.base_url = s.url();
  c.api_key = "test-key";
  c.model = "test-model";
  c.timeout = 5000ms;
  return c;
}

History TwoTurns() {
  History h;
  h.task = "count the files";
  h.turns.push_back({"ls", ActionOutcome{0, 0, "a\nb\n", "", false, 3}});
  h.turns.push_back({"wc -l a", ActionOutcome{1, 0, "", "wc: a: No such file", false, 2}});
  return h;
}

TEST(OpenAIClientTest, ActorParsesBashToolCallAndSendsHistory) {
  LoopbackServer server([](const Json&) { return ToolCallReply("find . -type f | wc -l"); });
  OpenAIActor actor(Config(server));
  auto call = actor.Launch(TwoTurns());
  ASSERT_TRUE(call.ok());
  auto d = (*call)->WaitUntil(Clock::now() + 10s);
  ASSERT_TRUE(d.has_value());
  ASSERT_TRUE(d->ok()) << d->error().ToString();
  EXPECT_FALSE((*d)->done);
  EXPECT_EQ((*d)->command, "find . -type f | wc -l");
  EXPECT_EQ((*d)->tokens, 321u);

  Json req = server.last_request();
  EXPECT_EQ(req["model"], "test-model");
  ASSERT_EQ(req["tools"].size(), 1u);
  EXPECT_EQ(req["tools"][0]["function"]["name"], "bash");
  EXPECT_EQ(req["tools"][0]["function"]["parameters"]["properties"]["command"]["type"], "string");
  // system, user, then (assistant tool call, tool result) per turn.
  ASSERT_EQ(req["messages"].size(), 6u);
  EXPECT_EQ(req["messages"][1]["content"], "count the files");
  EXPECT_EQ(req["messages"][4]["tool_calls"][0]["function"]["arguments"],
            Json({{"command", "wc -l a"}}).dump());
  EXPECT_EQ(req["messages"][5]["role"], "tool");
  EXPECT_EQ(req["messages"][5]["tool_call_id"], req["messages"][4]["tool_calls"][0]["id"]);
  EXPECT_NE(req["messages"][5]["content"].get<std::string>().find("exit_code: 1"), std::string::npos);
  EXPECT_NE(server.last_headers().find("Authorization: Bearer test-key"), std::string::npos);
}

TEST(OpenAIClientTest, ReplyWithoutToolCallMeansDone) {
  LoopbackServer server([](const Json&) {
    Json r = {{"choices", {{{"message", {{"role", "assistant"}, {"content", "All done."}}}}}}};
    return std::pair<int, std::string>{200, r.dump()};
  });
  OpenAIActor actor(Config(server));
  auto call = actor.Launch(History{"t", {}});
  ASSERT_TRUE(call.ok());
  auto d = (*call)->WaitUntil(Clock::now() + 10s);
  ASSERT_TRUE(d.has_value() && d->ok());
  EXPECT_TRUE((*d)->done);
  EXPECT_EQ((*d)->message, "All done.");
}

TEST(OpenAIClientTest, HttpErrorsCarryTheServersMessage) {
  LoopbackServer server([](const Json&) {
    return std::pair<int, std::string>{401, R"({"error":{"message":"bad key"}})"};
  });
  ChatClient client(Config(server));
  auto r = client.Complete({{"messages", Json::array()}}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied);
  EXPECT_NE(r.error().message().find("bad key"), std::string::npos);
}

TEST(OpenAIClientTest, TimesOut) {
  LoopbackServer server([](const Json&) { return ToolCallReply("true"); }, 20000ms);
  OpenAIConfig c = Config(server);
  c.timeout = 300ms;
  ChatClient client(c);
  auto r = client.Complete({{"messages", Json::array()}}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kDeadlineExceeded);
}

TEST(OpenAIClientTest, CancelAbortsAnInFlightCall) {
  LoopbackServer server([](const Json&) { return ToolCallReply("true"); }, 20000ms);
  OpenAIActor actor(Config(server));  // 5 s timeout: cancellation must come first
  auto call = actor.Launch(History{"t", {}});
  ASSERT_TRUE(call.ok());
  while (server.requests() == 0) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE((*call)->WaitUntil(Clock::now() + 50ms).has_value());
  (*call)->Cancel();
  auto d = (*call)->WaitUntil(Clock::now() + 4500ms);
  ASSERT_TRUE(d.has_value()) << "cancel did not end the transfer before the timeout";
  ASSERT_FALSE(d->ok());
  EXPECT_EQ(d->error().code(), Code::kAborted);
}

TEST(OpenAIClientTest, UnreachableServerIsUnavailable) {
  OpenAIConfig c;
  c.base_url = "http://127.0.0.1:1/v1";
  c.model = "m";
  ChatClient client(c);
  auto r = client.Complete({{"messages", Json::array()}}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
}

TEST(OpenAIClientTest, SpeculatorParsesCandidates) {
  LoopbackServer server([](const Json& req) {
    EXPECT_EQ(req["response_format"]["type"], "json_object");
    Json content = {{"candidates",
                     {{{"command", "ls -la"}, {"confidence", 0.3}},
                      {{"command", "pwd"}, {"confidence", 0.6}},
                      {{"command", "ls -la"}, {"confidence", 0.1}},
                      {{"nonsense", 1}}}}};
    Json r = {{"choices", {{{"message", {{"role", "assistant"}, {"content", content.dump()}}}}}}};
    return std::pair<int, std::string>{200, r.dump()};
  });
  OpenAISpeculator spec(Config(server));
  auto c = spec.Propose(ToSpeculatorHistory(TwoTurns()), 3);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].command, "pwd");
  EXPECT_DOUBLE_EQ((*c)[0].confidence, 0.6);
  EXPECT_EQ((*c)[1].command, "ls -la");
}

TEST(OpenAIClientTest, ConfigFromEnvironment) {
  ::setenv("SPECULA_MODEL", "env-model", 1);
  ::setenv("OPENAI_BASE_URL", "http://example.invalid/v1", 1);
  OpenAIConfig c = OpenAIConfigFromEnvironment();
  EXPECT_EQ(c.model, "env-model");
  EXPECT_EQ(c.base_url, "http://example.invalid/v1");
  OpenAIConfig explicit_cfg;
  explicit_cfg.model = "mine";
  EXPECT_EQ(OpenAIConfigFromEnvironment(explicit_cfg).model, "mine");
  ::unsetenv("SPECULA_MODEL");
  ::unsetenv("OPENAI_BASE_URL");
}

}  // namespace
}  // namespace specula::agents
