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
