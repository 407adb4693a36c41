// The MCP message parser and encoders (runtime/mcp/message.h): every kind of
// malformed line gets its JSON-RPC code, and nothing throws.
#include <gtest/gtest.h>

#include "runtime/mcp/message.h"

namespace specula::mcp {
namespace {

TEST(McpMessage, RequestNotificationAndResponse) {
  Parsed r = ParseMessage(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}})");
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->kind, Message::Kind::kRequest);
  EXPECT_EQ(r.message->id, 1);
  EXPECT_EQ(r.message->method, "tools/list");
  EXPECT_EQ(r.message->params["cursor"], "x");

  Parsed n = ParseMessage(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_TRUE(n.message);
  EXPECT_EQ(n.message->kind, Message::Kind::kNotification);
  EXPECT_TRUE(n.message->params.is_object());

  Parsed s = ParseMessage(R"({"jsonrpc":"2.0","id":"abc","result":{}})");
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->kind, Message::Kind::kResponse);
  Parsed e = ParseMessage(R"({"jsonrpc":"2.0","id":"abc","error":{"code":-1,"message":"no"}})");
  ASSERT_TRUE(e.message);
  EXPECT_TRUE(e.message->error);
}

TEST(McpMessage, MalformedLinesGetTheirCodes) {
  struct Case {
    const char* line;
    int code;
    bool reply;
  };
  const Case cases[] = {
      {"{not json", kParseError, true},
      {"", kParseError, true},
      {R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])", kInvalidRequest, true},  // batch
      {"42", kInvalidRequest, true},
      {R"({"id":1,"method":"ping"})", kInvalidRequest, true},                    // no jsonrpc
      {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", kInvalidRequest, true}, // MCP: ids are never null
      {R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":true,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":""})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":7})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1})", kInvalidRequest, true},                    // neither request nor response
      {R"({"jsonrpc":"2.0","id":1,"result":1,"error":{}})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})", kInvalidParams, true},
      {R"({"jsonrpc":"2.0","method":"x","params":"s"})", kInvalidParams, false},  // a notification: no reply
  };
  for (const auto& c : cases) {
    Parsed p = ParseMessage(c.line);
    ASSERT_TRUE(p.error) << c.line;
    EXPECT_FALSE(p.message) << c.line;
    EXPECT_EQ(p.error->code, c.code) << c.line;
    EXPECT_EQ(p.error->reply, c.reply) << c.line;
  }
  // The id is echoed when it could be read.
  Parsed p = ParseMessage(R"({"jsonrpc":"2.0","id":"q","method":"ping","params":3})");
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->id, "q");
}

TEST(McpMessage, DeepNestingAndBadUtf8DoNotThrow) {
  std::string deep(100000, '[');
  Parsed p = ParseMessage(deep);
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->code, kParseError);
  Parsed u = ParseMessage("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}");
  ASSERT_TRUE(u.error);
  EXPECT_EQ(u.error->code, kParseError);
  // Output with invalid UTF-8 (a command's bytes) is still one line of JSON.
  std::string line = EncodeResult(1, Json{{"text", std::string("a\xff\nb")}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_FALSE(Json::parse(line, nullptr, false).is_discarded());
}

TEST(McpMessage, VersionNegotiationAndProgressToken) {
  EXPECT_EQ(NegotiateVersion("2025-06-18"), "2025-06-18");
  EXPECT_EQ(NegotiateVersion("2024-11-05"), "2024-11-05");
  EXPECT_EQ(NegotiateVersion("2099-01-01"), "2025-06-18");
  EXPECT_EQ(NegotiateVersion(""), "2025-06-18");
  EXPECT_TRUE(HasStructuredContent("2025-06-18"));
  EXPECT_FALSE(HasStructuredContent("2025-03-26"));
  EXPECT_EQ(ProgressToken(Json{{"_meta", {{"progressToken", "t"}}}}), Json("t"));
  EXPECT_EQ(ProgressToken(Json{{"_meta", {{"progressToken", 7}}}}), Json(7));
  EXPECT_FALSE(ProgressToken(Json{{"_meta", {{"progressToken", 1.5}}}}));
  EXPECT_FALSE(ProgressToken(Json{{"_meta", 1}}));
  EXPECT_FALSE(ProgressToken(Json::object()));
  std::string note = EncodeNotification("notifications/progress", Json{{"progress", 1}});
  Json j = Json::parse(note);
  EXPECT_EQ(j["jsonrpc"], "2.0");
  EXPECT_FALSE(j.contains("id"));
}

}  // namespace
}  // namespace specula::mcp
