// The Streamable HTTP transport's request-head parser and Accept matcher
// (runtime/mcp/http_request.h), without sockets. The transport end to end,
// with the SDK's HTTP client, is McpE2E.TheSdkClientOverStreamableHttp.
#include <gtest/gtest.h>

#include <string>

#include "runtime/mcp/http_request.h"

namespace specula::mcp {
namespace {

using State = HttpParse::State;

TEST(McpHttpHead, ParsesAPostWithItsBodyLength) {
  std::string head =
      "POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Accept: application/json\r\nAccept: text/event-stream\r\nContent-Length: 2\r\n\r\n";
  HttpParse p = ParseHttpHead(head + "{}", 100);
  ASSERT_EQ(p.state, State::kDone) << p.reason;
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.target, "/mcp?x=1");
  EXPECT_EQ(p.request.content_length, 2u);
  EXPECT_EQ(p.body_offset, head.size());
  EXPECT_EQ(p.request.Header("content-type"), "application/json");
  EXPECT_EQ(p.request.Header("accept"), "application/json, text/event-stream") << "repeated headers joined";
  EXPECT_EQ(p.request.Header("absent"), "");
}

TEST(McpHttpHead, WaitsForTheBlankLine) {
  EXPECT_EQ(ParseHttpHead("POST /mcp HTTP/1.1\r\nHost: x\r\n", 100).state, State::kNeedMore);
  EXPECT_EQ(ParseHttpHead("", 100).state, State::kNeedMore);
}

TEST(McpHttpHead, RefusesWhatIsNotAPlainRequest) {
  auto status = [](const std::string& in, size_t max_body = 100) {
    HttpParse p = ParseHttpHead(in, max_body);
    return p.state == State::kBad ? p.status : 0;
  };
  EXPECT_EQ(status("POST /mcp HTTP/2\r\n\r\n"), 505);
  EXPECT_EQ(status("POST mcp HTTP/1.1\r\n\r\n"), 400) << "a target that is not a path";
  EXPECT_EQ(status("POST http://evil/mcp HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(status("PO ST /mcp HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nBad Name: v\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nX: a\x01" "b\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), 400)
      << "two lengths: request smuggling";
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), 400);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), 413);
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nX: " + std::string(kMaxHttpHeaderBytes, 'a')), 431)
      << "a head that never ends is cut off";
  EXPECT_EQ(status("POST /mcp HTTP/1.1\r\nX: " + std::string(kMaxHttpHeaderBytes, 'a') + "\r\n\r\n"), 431);
}

TEST(McpHttpHead, AcceptListsMediaRanges) {
  EXPECT_TRUE(AcceptsType("", "application/json")) << "no Accept: anything";
  EXPECT_TRUE(AcceptsType("application/json, text/event-stream", "text/event-stream"));
  EXPECT_TRUE(AcceptsType("Application/JSON;q=0.9", "application/json"));
  EXPECT_TRUE(AcceptsType("text/*", "text/event-stream"));
  EXPECT_TRUE(AcceptsType("*/*", "application/json"));
  EXPECT_FALSE(AcceptsType("text/html", "application/json"));
  EXPECT_FALSE(AcceptsType("application/jsonx", "application/json"));
}

TEST(McpHttpHead, ResponsesCloseTheConnection) {
  std::string h = HttpHead(202, "", 0u);
  EXPECT_EQ(h.rfind("HTTP/1.1 202 Accepted\r\n", 0), 0u) << h;
  EXPECT_NE(h.find("Connection: close\r\n\r\n"), std::string::npos);
  std::string sse = HttpHead(200, "text/event-stream", std::nullopt, {{"Mcp-Session-Id", "s1"}});
  EXPECT_EQ(sse.find("Content-Length"), std::string::npos) << "a stream has no length";
  EXPECT_NE(sse.find("Mcp-Session-Id: s1\r\n"), std::string::npos);
}

}  // namespace
}  // namespace specula::mcp
