// The model-backed speculators against a loopback HTTP/1.1 server started by
// the test, speaking each protocol exactly: OpenAI chat completions (plain
// and SSE chunks ending in [DONE]) and the Anthropic Messages API (headers
// x-api-key and anthropic-version; SSE events message_start,
// content_block_start, ping, content_block_delta, content_block_stop,
// message_delta, message_stop; error bodies {"type":"error","error":{..}}
// with HTTP 429, 529, 500, and an in-stream error event); timeouts,
// cancellation within 50 ms, and the cascade (fast proposals at once, model
// proposals as they stream, merged; fallback on errors; deadline).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <functional>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"
#include "speculators/anthropic_client.h"
#include "speculators/cascade.h"
#include "speculators/http.h"
#include "speculators/openai_client.h"

namespace specula::speculators {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::string> chunks;  // sent with Transfer-Encoding: chunked, one write each
  std::chrono::milliseconds first_delay{0};
  std::chrono::milliseconds chunk_delay{0};
};

struct Request {
  std::string method, path, headers;
  Json body;
};

// One thread, one connection at a time. The reply is chunked so that
// streaming is real: each chunk is written separately with a delay.
class LoopbackServer {
 public:
  using Handler = std::function<Reply(const Request&)>;
  explicit LoopbackServer(Handler h) : handler_(std::move(h)) {
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
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Request last() {
    std::lock_guard l(mu_);
    return last_;
  }
  int requests() const { return requests_; }
  int closed_early() const { return closed_early_; }

 private:
  // Waits, unless the server stops or the client hangs up.
  bool Sleep(int fd, std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (!stop_ && Clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2) > 0) {
        char b;
        if (::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) return false;  // closed
        std::this_thread::sleep_for(2ms);
      }
    }
    return !stop_;
  }
  bool Send(int fd, const std::string& s) {
    return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  void Serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      std::string req;
      char buf[8192];
      size_t body_at = std::string::npos, need = 0;
      while (!stop_) {
        pollfd q{c.get(), POLLIN, 0};
        if (::poll(&q, 1, 20) <= 0) continue;
        ssize_t k = ::recv(c.get(), buf, sizeof buf, 0);
        if (k <= 0) break;
        req.append(buf, static_cast<size_t>(k));
        if (body_at == std::string::npos && (body_at = req.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          std::string lower = req.substr(0, body_at);
          for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          auto cl = lower.find("content-length: ");
          need = cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 16));
        }
        if (body_at != std::string::npos && req.size() >= body_at + need) break;
      }
      if (body_at == std::string::npos) continue;
      Request r;
      size_t sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
      r.method = req.substr(0, sp1);
      r.path = req.substr(sp1 + 1, sp2 - sp1 - 1);
      r.headers = req.substr(0, body_at);
      r.body = Json::parse(req.substr(body_at, need), nullptr, false);
      {
        std::lock_guard l(mu_);
        last_ = r;
      }
      ++requests_;
      Reply rep = handler_(r);
      if (!Sleep(c.get(), rep.first_delay)) {
        ++closed_early_;
        continue;
      }
      std::string head = "HTTP/1.1 " + std::to_string(rep.status) + " X\r\nContent-Type: " + rep.content_type +
                         "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
      if (!Send(c.get(), head)) {
        ++closed_early_;
        continue;
      }
      bool ok = true;
      for (size_t i = 0; i < rep.chunks.size() && ok; ++i) {
        if (i && !Sleep(c.get(), rep.chunk_delay)) {
          ok = false;
          break;
        }
        const auto& ch = rep.chunks[i];
        char len[32];
        std::snprintf(len, sizeof len, "%zx\r\n", ch.size());
        ok = Send(c.get(), len + ch + "\r\n");
      }
      if (ok) ok = Send(c.get(), "0\r\n\r\n");
      if (!ok) ++closed_early_;
    }
  }

  Handler handler_;
  UniqueFd listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0}, closed_early_{0};
  std::mutex mu_;
  Request last_;
  std::thread thread_;
};

std::string CandidatesJson(const std::vector<std::pair<std::string, double>>& c) {
  Json arr = Json::array();
  for (const auto& [cmd, p] : c) arr.push_back({{"command", cmd}, {"confidence", p}});
  return Json{{"candidates", arr}}.dump();
}

// The text split into n pieces.
std::vector<std::string> Pieces(const std::string& s, size_t n) {
  std::vector<std::string> out;
  size_t step = (s.size() + n - 1) / n;
  for (size_t i = 0; i < s.size(); i += step) out.push_back(s.substr(i, step));
  return out;
}

// ---------- OpenAI ----------

Reply OpenAIPlain(const std::string& content) {
  Json r = {{"id", "chatcmpl-1"},
            {"object", "chat.completion"},
            {"choices", {{{"index", 0}, {"finish_reason", "stop"}, {"message", {{"role", "assistant"}, {"content", content}}}}}},
            {"usage", {{"total_tokens", 42}}}};
  return {200, "application/json", {r.dump()}};
}

Reply OpenAIStream(const std::string& content, size_t pieces, std::chrono::milliseconds delay) {
  Reply r;
  r.content_type = "text/event-stream";
  r.chunk_delay = delay;
  Json first = {{"id", "c"}, {"object", "chat.completion.chunk"},
                {"choices", {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}}}};
  r.chunks.push_back("data: " + first.dump() + "\n\n");
  for (const auto& p : Pieces(content, pieces)) {
    Json d = {{"id", "c"}, {"object", "chat.completion.chunk"},
              {"choices", {{{"index", 0}, {"delta", {{"content", p}}}, {"finish_reason", nullptr}}}}};
    r.chunks.push_back("data: " + d.dump() + "\n\n");
  }
  Json last = {{"id", "c"}, {"object", "chat.completion.chunk"}, {"choices", {{{"index", 0}, {"delta", Json::object()}, {"finish_reason", "stop"}}}}};
  r.chunks.push_back("data: " + last.dump() + "\n\ndata: [DONE]\n\n");
  return r;
}

OpenAIConfig OConfig(const LoopbackServer& s) {
  OpenAIConfig c;
  c.base_url = s.base() + "/v1";
  c.api_key = "sk-test";
  c.model = "fast-model";
  c.timeout = 5000ms;
  return c;
}

History SmallHistory() {
  History h;
  h.task = "make the tests pass";
  Step s;
  s.command = "ls";
  s.stdout_text = "Makefile\nsrc\n";
  h.steps.push_back(s);
  return h;
}

TEST(OpenAISpeculatorTest, PlainReplyAndRequestShape) {
  LoopbackServer server([](const Request&) {
    return OpenAIPlain(CandidatesJson({{"make test", 0.5}, {"cat Makefile", 0.3}}));
  });
  OpenAISpeculator spec(OConfig(server));
  auto c = spec.Propose(SmallHistory(), 3);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].command, "make test");
  EXPECT_EQ((*c)[0].source, "openai");
  Request r = server.last();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/v1/chat/completions");
  EXPECT_NE(r.headers.find("Authorization: Bearer sk-test"), std::string::npos);
  EXPECT_EQ(r.body["model"], "fast-model");
  EXPECT_EQ(r.body["response_format"]["type"], "json_object");
  ASSERT_EQ(r.body["messages"].size(), 2u);
  EXPECT_EQ(r.body["messages"][0]["role"], "system");
  EXPECT_NE(r.body["messages"][1]["content"].get<std::string>().find("make the tests pass"), std::string::npos);
  EXPECT_FALSE(r.body.contains("stream"));
}

TEST(OpenAISpeculatorTest, StreamedCandidatesArriveOneByOne) {
  std::string content = CandidatesJson({{"make test", 0.5}, {"cat Makefile", 0.3}, {"ls src", 0.1}});
  LoopbackServer server([&](const Request&) { return OpenAIStream(content, 12, 30ms); });
  OpenAIConfig cfg = OConfig(server);
  cfg.stream = true;
  OpenAISpeculator spec(cfg);
  std::vector<std::pair<std::string, Clock::time_point>> seen;
  auto t0 = Clock::now();
  auto c = spec.ProposeStreaming(SmallHistory(), 3, nullptr, [&](const Candidate& x) { seen.push_back({x.command, Clock::now()}); });
  auto t1 = Clock::now();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first, "make test");
  // The first candidate came well before the end of the reply.
  EXPECT_LT(seen[0].second - t0, (t1 - t0) / 2);
  EXPECT_EQ(server.last().body["stream"], true);
  EXPECT_NE(server.last().headers.find("Accept: text/event-stream"), std::string::npos);
}

TEST(OpenAIClientTest, StreamedToolCallsAndErrorStatuses) {
  // Tool call arguments streamed in pieces are joined.
  LoopbackServer server([](const Request& r) {
    if (r.body.value("model", "") == "limited") {
      return Reply{429, "application/json", {R"({"error":{"message":"Rate limit reached","type":"requests"}})"}};
    }
    if (r.body.value("model", "") == "broken") {
      return Reply{500, "application/json", {R"({"error":{"message":"The server had an error"}})"}};
    }
    Reply rep;
    rep.content_type = "text/event-stream";
    // As OpenAI streams a tool call: id, type and name in the first delta,
    // then argument fragments.
    Json first = {{"choices", {{{"index", 0}, {"delta", {{"role", "assistant"}, {"tool_calls", {{{"index", 0}, {"id", "call_1"}, {"type", "function"}, {"function", {{"name", "bash"}, {"arguments", ""}}}}}}}}}}}};
    rep.chunks.push_back("data: " + first.dump() + "\n\n");
    for (const char* a : {"{\"comm", "and\": \"ls\"}"}) {
      Json d = {{"choices", {{{"index", 0}, {"delta", {{"tool_calls", {{{"index", 0}, {"function", {{"arguments", a}}}}}}}}}}}};
      rep.chunks.push_back("data: " + d.dump() + "\n\n");
    }
    rep.chunks.push_back("data: [DONE]\n\n");
    return rep;
  });
  OpenAIConfig cfg = OConfig(server);
  ChatClient client(cfg);
  std::string text;
  auto r = client.Complete({{"messages", Json::array()}}, nullptr, [&](std::string_view t) { text += t; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name, "bash");
  EXPECT_EQ(r->tool_calls[0].arguments, "{\"command\": \"ls\"}");
  cfg.model = "limited";
  auto e = ChatClient(cfg).Complete({{"messages", Json::array()}}, nullptr);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Code::kResourceExhausted);
  EXPECT_NE(e.error().message().find("Rate limit reached"), std::string::npos);
  cfg.model = "broken";
  auto b = ChatClient(cfg).Complete({{"messages", Json::array()}}, nullptr);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), Code::kUnavailable);
}

TEST(OpenAISpeculatorTest, NotJsonIsAnError) {
  LoopbackServer server([](const Request&) { return OpenAIPlain("I think you should run ls"); });
  OpenAISpeculator spec(OConfig(server));
  auto c = spec.Propose(SmallHistory(), 3);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Code::kInternal);
}

// ---------- Anthropic ----------

std::string Sse(const std::string& event, const Json& data) { return "event: " + event + "\ndata: " + data.dump() + "\n\n"; }

Reply AnthropicStream(const std::string& text, size_t pieces, std::chrono::milliseconds delay) {
  Reply r;
  r.content_type = "text/event-stream; charset=utf-8";
  r.chunk_delay = delay;
  r.chunks.push_back(Sse("message_start", {{"type", "message_start"},
                                           {"message", {{"id", "msg_1"}, {"type", "message"}, {"role", "assistant"}, {"content", Json::array()},
                                                        {"model", "fast"}, {"stop_reason", nullptr}, {"usage", {{"input_tokens", 25}, {"output_tokens", 1}}}}}}));
  r.chunks.push_back(Sse("content_block_start", {{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}}));
  r.chunks.push_back(Sse("ping", {{"type", "ping"}}));
  for (const auto& p : Pieces(text, pieces)) {
    r.chunks.push_back(Sse("content_block_delta", {{"type", "content_block_delta"}, {"index", 0}, {"delta", {{"type", "text_delta"}, {"text", p}}}}));
  }
  r.chunks.push_back(Sse("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}));
  r.chunks.push_back(Sse("message_delta", {{"type", "message_delta"}, {"delta", {{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}}, {"usage", {{"output_tokens", 15}}}}));
  r.chunks.push_back(Sse("message_stop", {{"type", "message_stop"}}));
  return r;
}

Reply AnthropicError(int status, const std::string& type, const std::string& message) {
  return {status, "application/json", {Json{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}}.dump()}};
}

AnthropicConfig AConfig(const LoopbackServer& s) {
  AnthropicConfig c;
  c.base_url = s.base();
  c.api_key = "test-key";
  c.model = "claude-fast";
  c.timeout = 5000ms;
  return c;
}

TEST(AnthropicSpeculatorTest, StreamedMessageAndHeaders) {
  std::string text = CandidatesJson({{"make test", 0.6}, {"make", 0.2}});
  LoopbackServer server([&](const Request&) { return AnthropicStream(text, 9, 20ms); });
  AnthropicSpeculator spec(AConfig(server));
  std::vector<std::string> seen;
  auto c = spec.ProposeStreaming(SmallHistory(), 3, nullptr, [&](const Candidate& x) { seen.push_back(x.command); });
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].command, "make test");
  EXPECT_EQ((*c)[0].source, "anthropic");
  EXPECT_EQ(seen, (std::vector<std::string>{"make test", "make"}));
  Request r = server.last();
  EXPECT_EQ(r.path, "/v1/messages");
  EXPECT_NE(r.headers.find("x-api-key: test-key"), std::string::npos);
  EXPECT_NE(r.headers.find("anthropic-version: 2023-06-01"), std::string::npos);
  EXPECT_EQ(r.body["model"], "claude-fast");
  EXPECT_EQ(r.body["stream"], true);
  EXPECT_TRUE(r.body["max_tokens"].is_number());
  EXPECT_TRUE(r.body["system"].is_string());
  ASSERT_EQ(r.body["messages"].size(), 1u);
  EXPECT_EQ(r.body["messages"][0]["role"], "user");
}

TEST(AnthropicClientTest, PlainMessage) {
  LoopbackServer server([](const Request&) {
    Json m = {{"id", "msg_1"}, {"type", "message"}, {"role", "assistant"}, {"model", "claude-fast"},
              {"content", {{{"type", "text"}, {"text", "hello "}}, {{"type", "text"}, {"text", "world"}}}},
              {"stop_reason", "end_turn"}, {"usage", {{"input_tokens", 10}, {"output_tokens", 3}}}};
    return Reply{200, "application/json", {m.dump()}};
  });
  AnthropicConfig cfg = AConfig(server);
  cfg.stream = false;
  MessagesClient client(cfg);
  auto r = client.Create("sys", "hi", nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->text, "hello world");
  EXPECT_EQ(r->stop_reason, "end_turn");
  EXPECT_EQ(r->input_tokens, 10u);
  EXPECT_EQ(r->output_tokens, 3u);
  EXPECT_FALSE(server.last().body.contains("stream"));
}

TEST(AnthropicClientTest, ErrorBodiesAndStatuses) {
  LoopbackServer server([](const Request& r) {
    std::string m = r.body.value("model", "");
    if (m == "429") return AnthropicError(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit");
    if (m == "529") return AnthropicError(529, "overloaded_error", "Overloaded");
    if (m == "500") return AnthropicError(500, "api_error", "Internal server error");
    if (m == "401") return AnthropicError(401, "authentication_error", "invalid x-api-key");
    if (m == "400") return AnthropicError(400, "invalid_request_error", "max_tokens: field required");
    // A stream that fails midway with an error event.
    Reply rep = AnthropicStream(CandidatesJson({{"ls", 0.5}}), 3, 0ms);
    rep.chunks.resize(4);
    rep.chunks.push_back("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    return rep;
  });
  struct Case {
    const char* model;
    Code code;
    const char* text;
  };
  for (const Case& c : {Case{"429", Code::kResourceExhausted, "rate_limit_error"}, Case{"529", Code::kUnavailable, "Overloaded"},
                        Case{"500", Code::kUnavailable, "api_error"}, Case{"401", Code::kPermissionDenied, "invalid x-api-key"},
                        Case{"400", Code::kInvalidArgument, "max_tokens"}, Case{"midstream", Code::kUnavailable, "overloaded_error"}}) {
    AnthropicConfig cfg = AConfig(server);
    cfg.model = c.model;
    auto r = MessagesClient(cfg).Create("s", "u", nullptr, [](std::string_view) {});
    ASSERT_FALSE(r.ok()) << c.model;
    EXPECT_EQ(r.error().code(), c.code) << c.model << ": " << r.error().ToString();
    EXPECT_NE(r.error().message().find(c.text), std::string::npos) << r.error().message();
  }
}

TEST(AnthropicClientTest, TruncatedStreamIsAnError) {
  LoopbackServer server([](const Request&) {
    Reply rep = AnthropicStream(CandidatesJson({{"ls", 0.5}}), 3, 0ms);
    rep.chunks.pop_back();  // no message_stop
    return rep;
  });
  auto r = MessagesClient(AConfig(server)).Create("s", "u", nullptr, [](std::string_view) {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("message_stop"), std::string::npos);
}

TEST(ModelClientTest, TimeoutAndFastCancellation) {
  LoopbackServer server([](const Request&) {
    Reply r = OpenAIPlain(CandidatesJson({{"ls", 0.5}}));
    r.first_delay = 20000ms;
    return r;
  });
  OpenAIConfig cfg = OConfig(server);
  cfg.timeout = 300ms;
  auto t = OpenAISpeculator(cfg).Propose(SmallHistory(), 3);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), Code::kDeadlineExceeded);
  // Cancellation of an idle transfer: within the 50 ms poll, not a second.
  cfg.timeout = 10000ms;
  AnthropicConfig acfg = AConfig(server);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    while (server.requests() < 2) std::this_thread::sleep_for(2ms);
    std::this_thread::sleep_for(50ms);
    cancel = true;
  });
  auto t0 = Clock::now();
  auto r = AnthropicSpeculator(acfg).ProposeStreaming(SmallHistory(), 3, &cancel, {});
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kAborted);
  EXPECT_LT(Clock::now() - t0, 1000ms);
  // Unreachable server.
  OpenAIConfig dead;
  dead.base_url = "http://127.0.0.1:1/v1";
  dead.model = "m";
  auto u = OpenAISpeculator(dead).Propose(SmallHistory(), 3);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code(), Code::kUnavailable);
}

// ---------- Cascade ----------

class FastFixed : public Speculator {
 public:
  Result<std::vector<Candidate>> Propose(const History&, int) override {
    ++calls;
    return std::vector<Candidate>{{"make", 0.3, "builtin"}, {"ls", 0.1, "builtin"}};
  }
  std::string Name() const override { return "fast"; }
  int calls = 0;
};

TEST(CascadeTest, FastAtOnceModelAsItStreamsMerged) {
  std::string text = CandidatesJson({{"make test", 0.7}, {"make", 0.5}});
  LoopbackServer server([&](const Request&) {
    Reply r = AnthropicStream(text, 6, 40ms);
    r.first_delay = 100ms;
    return r;
  });
  CascadeSpeculator cascade(std::make_unique<FastFixed>(), std::make_unique<AnthropicSpeculator>(AConfig(server)));
  auto t0 = Clock::now();
  auto first = cascade.Propose(SmallHistory(), 3);
  ASSERT_TRUE(first.ok());
  EXPECT_LT(Clock::now() - t0, 80ms);  // did not wait for the model
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].command, "make");
  // Later, the model's candidates arrive (the first before the reply ends)
  // and merge with the fast ones.
  std::optional<std::vector<Candidate>> partial;
  for (int i = 0; i < 300 && !partial; ++i) {
    std::this_thread::sleep_for(5ms);
    partial = cascade.Refresh();
  }
  ASSERT_TRUE(partial.has_value());
  EXPECT_EQ((*partial)[0].command, "make test");
  cascade.WaitForModel(5000ms);
  auto merged = cascade.Refresh();
  ASSERT_TRUE(merged.has_value());
  ASSERT_EQ(merged->size(), 3u);
  EXPECT_EQ((*merged)[0].command, "make test");
  // "make" from both: confidence raised above both, source joined.
  auto make = std::find_if(merged->begin(), merged->end(), [](const Candidate& c) { return c.command == "make"; });
  ASSERT_NE(make, merged->end());
  EXPECT_GT(make->confidence, 0.5);
  EXPECT_NE(make->source.find("+"), std::string::npos);
  EXPECT_FALSE(cascade.Refresh().has_value());  // nothing new since
  // The hints went to the model.
  EXPECT_NE(server.last().body["messages"][0]["content"].get<std::string>().find("- make (0.30)"), std::string::npos);
  EXPECT_EQ(cascade.model_error(), "");
}

TEST(CascadeTest, FallsBackWhenTheModelFailsAndCancelsOnDecision) {
  LoopbackServer server([](const Request& r) {
    if (r.body.value("model", "") == "down") return AnthropicError(529, "overloaded_error", "Overloaded");
    Reply slow = AnthropicStream(CandidatesJson({{"x", 0.9}}), 2, 0ms);
    slow.first_delay = 20000ms;
    return slow;
  });
  AnthropicConfig down = AConfig(server);
  down.model = "down";
  CascadeOptions wait;
  wait.wait = 2000ms;  // synchronous use: wait for the model's reply
  CascadeSpeculator failing(std::make_unique<FastFixed>(), std::make_unique<AnthropicSpeculator>(down), wait);
  auto c = failing.Propose(SmallHistory(), 3);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 2u);  // the fast proposals alone
  EXPECT_EQ((*c)[0].command, "make");
  EXPECT_NE(failing.model_error().find("Overloaded"), std::string::npos);

  CascadeSpeculator slow(std::make_unique<FastFixed>(), std::make_unique<AnthropicSpeculator>(AConfig(server)));
  ASSERT_TRUE(slow.Propose(SmallHistory(), 3).ok());
  while (server.requests() < 2) std::this_thread::sleep_for(2ms);
  auto t0 = Clock::now();
  slow.Cancel();  // the actor decided: the model call ends now
  EXPECT_LT(Clock::now() - t0, 1000ms);
  EXPECT_NE(slow.model_error().find("cancelled"), std::string::npos);

  // The deadline bounds a model call nobody cancels.
  CascadeOptions deadline;
  deadline.model_deadline = 200ms;
  deadline.wait = 3000ms;
  CascadeSpeculator bounded(std::make_unique<FastFixed>(), std::make_unique<AnthropicSpeculator>(AConfig(server)), deadline);
  auto t1 = Clock::now();
  auto b = bounded.Propose(SmallHistory(), 3);
  EXPECT_LT(Clock::now() - t1, 1500ms);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 2u);
}

}  // namespace
}  // namespace specula::speculators
