#include "runtime/rpc/protocol.h"

#include <gtest/gtest.h>

namespace specula::rpc {
namespace {

ProtocolError DecodeError(std::string_view line) {
  Decoded d = DecodeRequest(line);
  EXPECT_FALSE(d.request.has_value()) << line;
  EXPECT_TRUE(d.error.has_value()) << line;
  return d.error.value_or(ProtocolError{});
}

TEST(DecodeRequest, ValidRequest) {
  Decoded d = DecodeRequest(R"({"jsonrpc":"2.0","id":7,"method":"session.show","params":{"session":"s1"}})");
  ASSERT_TRUE(d.request) << d.error->message;
  EXPECT_EQ(*d.request->id, 7);
  EXPECT_EQ(d.request->method, "session.show");
  EXPECT_EQ(d.request->params["session"], "s1");
}

TEST(DecodeRequest, NotificationAndMissingParams) {
  Decoded d = DecodeRequest(R"({"jsonrpc":"2.0","method":"daemon.ping"})");
  ASSERT_TRUE(d.request);
  EXPECT_FALSE(d.request->id.has_value());
  EXPECT_TRUE(d.request->params.is_object());
  EXPECT_TRUE(d.request->params.empty());
  Decoded with_null_id = DecodeRequest(R"({"jsonrpc":"2.0","id":null,"method":"m"})");
  ASSERT_TRUE(with_null_id.request);
  EXPECT_TRUE(with_null_id.request->id.has_value());  // null id is still a request
}

TEST(DecodeRequest, ParseErrors) {
  EXPECT_EQ(DecodeError("{").code, kParseError);
  EXPECT_EQ(DecodeError("").code, kParseError);
  EXPECT_EQ(DecodeError("\xff\xfe").code, kParseError);
  EXPECT_EQ(DecodeError(std::string(100000, '[')).code, kParseError);  // nesting bomb
  EXPECT_EQ(DecodeError("{\"a\":\"\xc3\x28\"}").code, kParseError);     // invalid UTF-8 in a string
}

TEST(DecodeRequest, InvalidRequests) {
  EXPECT_EQ(DecodeError("[]").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"([{"jsonrpc":"2.0","method":"m","id":1}])").code, kInvalidRequest);
  EXPECT_EQ(DecodeError("42").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"method":"m","id":1})").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"jsonrpc":"1.0","method":"m","id":1})").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"jsonrpc":"2.0","method":5,"id":1})").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"jsonrpc":"2.0","method":"","id":1})").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"jsonrpc":"2.0","method":"m","id":{}})").code, kInvalidRequest);
  EXPECT_EQ(DecodeError(R"({"jsonrpc":"2.0","method":"m","id":1,"extra":true})").code, kInvalidRequest);
  ProtocolError positional = DecodeError(R"({"jsonrpc":"2.0","method":"m","id":"x","params":[1]})");
  EXPECT_EQ(positional.code, kInvalidParams);
  EXPECT_EQ(positional.id, "x");  // the id is echoed once it could be read
}

TEST(Encode, ErrorCarriesKindErrnoHint) {
  Error err = Error(Code::kNotFound, "no session \"s9\"", 2).WithHint("see specula session ls");
  Json reply = Json::parse(EncodeError(3, err));
  EXPECT_EQ(reply["jsonrpc"], "2.0");
  EXPECT_EQ(reply["id"], 3);
  EXPECT_EQ(reply["error"]["code"], -32002);
  EXPECT_EQ(reply["error"]["message"], "no session \"s9\"");
  EXPECT_EQ(reply["error"]["data"]["kind"], "not_found");
  EXPECT_EQ(reply["error"]["data"]["errno"], 2);
  EXPECT_EQ(reply["error"]["data"]["hint"], "see specula session ls");
}

TEST(Encode, CodesAreMinus32000MinusIndex) {
  EXPECT_EQ(JsonRpcCodeFor(Code::kInvalidArgument), -32001);
  EXPECT_EQ(JsonRpcCodeFor(Code::kUnavailable), -32006);
  EXPECT_EQ(JsonRpcCodeFor(Code::kInternal), -32011);
}

TEST(Encode, InvalidUtf8InResultIsReplacedNotThrown) {
  std::string line = EncodeResult(1, Json{{"stdout", std::string("a\xff" "b")}});
  Json reply = Json::parse(line);
  EXPECT_EQ(reply["result"]["stdout"], "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(DecodeReply, RoundTripsResultAndError) {
  auto ok = DecodeReply(EncodeResult("a", Json{{"pong", true}}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->id, "a");
  ASSERT_TRUE(ok->result.ok());
  EXPECT_EQ((*ok->result)["pong"], true);

  Error sent = Error(Code::kFailedPrecondition, "branch b1 is running", 16).WithHint("wait");
  auto bad = DecodeReply(EncodeError(4, sent));
  ASSERT_TRUE(bad.ok());
  ASSERT_FALSE(bad->result.ok());
  EXPECT_EQ(bad->result.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(bad->result.error().message(), "branch b1 is running");
  EXPECT_EQ(bad->result.error().sys_errno(), 16);
  EXPECT_EQ(bad->result.error().hint(), "wait");
}

TEST(DecodeReply, ProtocolCodesAndGarbage) {
  auto nf = DecodeReply(EncodeError(1, kMethodNotFound, "unknown method"));
  ASSERT_TRUE(nf.ok());
  EXPECT_FALSE(nf->result.ok());
  EXPECT_FALSE(DecodeReply("not json").ok());
  EXPECT_FALSE(DecodeReply(R"({"jsonrpc":"2.0","id":1})").ok());
  auto weird = DecodeReply(R"({"id":1,"error":{"code":"x","message":7}})");  // mistyped fields
  ASSERT_TRUE(weird.ok());
  EXPECT_EQ(weird->result.error().code(), Code::kInternal);
}

TEST(CodeFromName, AllCodesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(Code::kInternal); ++i) {
    auto code = static_cast<Code>(i);
    EXPECT_EQ(CodeFromName(CodeName(code)), code);
  }
  EXPECT_EQ(CodeFromName("bogus"), std::nullopt);
}

}  // namespace
}  // namespace specula::rpc

namespace specula::rpc {
namespace {

// The id of a reply line, as text: what follows "id": up to the next member.
std::string ReplyIdText(const std::string& reply) {
  const std::string key = "\"id\":";
  size_t at = reply.find(key);
  if (at == std::string::npos) return "<no id>";
  size_t end = reply.find(",\"", at + key.size());
  return reply.substr(at + key.size(), end - at - key.size());
}

// JSON-RPC 2.0: the reply's id is "the same value" the request had. Every
// spelling a client may choose comes back exactly as written.
TEST(DecodeRequest, IdsAreEchoedExactly) {
  const std::vector<std::string> ids = {
      "7", "-7", "0", "\"abc\"", "\"\"", "null", "\"\\u0041\\n\"", "\"caf\xc3\xa9\"",
      "9007199254740993",            // 2^53 + 1: not a double
      "9223372036854775807",         // INT64_MAX
      "-9223372036854775808",        // INT64_MIN
      "18446744073709551615",        // UINT64_MAX
      "123456789012345678901234567890",  // beyond 64 bits
      "1.5", "1.50", "-0.25", "1e2", "1E+2", "0.1", "-0",
  };
  for (const std::string& id : ids) {
    std::string line = R"({"jsonrpc":"2.0", "method":"m", "id": )" + id + R"( , "params":{"a":[1,{"id":2}]}})";
    Decoded d = DecodeRequest(line);
    ASSERT_TRUE(d.request) << id << ": " << d.error->message;
    ASSERT_TRUE(d.request->id.has_value()) << id;
    EXPECT_EQ(d.request->raw_id.json, id);
    std::string ok = EncodeResult(d.request->raw_id, Json{{"x", 1}});
    EXPECT_EQ(ReplyIdText(ok), id) << ok;
    EXPECT_TRUE(Json::parse(ok, nullptr, false).is_object()) << ok;  // still valid JSON
    std::string err = EncodeError(d.request->raw_id, Error(Code::kNotFound, "no"));
    EXPECT_EQ(ReplyIdText(err), id) << err;
    EXPECT_TRUE(Json::parse(err, nullptr, false).is_object()) << err;
  }
}

TEST(DecodeRequest, IdSpellingsOfTheKeyAndPlacement) {
  // The id member may come first, last, with an escaped key, or repeated
  // (the parser keeps the last one, and so does the echo).
  Decoded first = DecodeRequest(R"({"id":18446744073709551616,"jsonrpc":"2.0","method":"m"})");
  ASSERT_TRUE(first.request);
  EXPECT_EQ(first.request->raw_id.json, "18446744073709551616");
  Decoded escaped = DecodeRequest(R"({"jsonrpc":"2.0","method":"m","\u0069d":"x"})");
  ASSERT_TRUE(escaped.request);
  EXPECT_EQ(escaped.request->raw_id.json, R"("x")");
  Decoded repeated = DecodeRequest(R"({"jsonrpc":"2.0","id":1,"method":"m","id":2})");
  ASSERT_TRUE(repeated.request);
  EXPECT_EQ(*repeated.request->id, 2);
  EXPECT_EQ(repeated.request->raw_id.json, "2");
  Decoded no_id = DecodeRequest(R"({"jsonrpc":"2.0","method":"m","params":{"id":3}})");
  ASSERT_TRUE(no_id.request);
  EXPECT_FALSE(no_id.request->id.has_value());
}

TEST(DecodeRequest, ProtocolErrorsEchoTheIdExactly) {
  ProtocolError e = DecodeRequest(R"({"jsonrpc":"1.0","method":"m","id":12345678901234567890123})").error.value();
  EXPECT_EQ(e.raw_id.json, "12345678901234567890123");
  EXPECT_EQ(ReplyIdText(EncodeError(e.raw_id, e.code, e.message)), "12345678901234567890123");
  ProtocolError unreadable = DecodeRequest("{").error.value();
  EXPECT_EQ(unreadable.raw_id.json, "null");
  EXPECT_EQ(ReplyIdText(EncodeError(unreadable.raw_id, unreadable.code, unreadable.message)), "null");
}

}  // namespace
}  // namespace specula::rpc
