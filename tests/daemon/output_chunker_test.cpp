// Streaming output's wire side (runtime/api/wire.h OutputChunk,
// runtime/api/output_chunker.h): the notification's JSON as docs/api.md
// documents it, the commit's stream param, and how output is cut into
// chunks (UTF-8 boundaries, 64 KiB, nothing lost or repeated).
#include "runtime/api/output_chunker.h"

#include <gtest/gtest.h>

#include <vector>

#include "runtime/rpc/protocol.h"

namespace specula::api {
namespace {

TEST(OutputChunk, NotificationHasTheDocumentedShape) {
  OutputChunk c{"s1", "b2", "stdout", "one\n"};
  EXPECT_EQ(ToJson(c), Json::parse(R"({"session":"s1","branch":"b2","stream":"stdout","data":"one\n"})"));
  EXPECT_STREQ(OutputChunk::kMethod, "action.output");
  // As the daemon sends it, and as a client reads it back.
  std::string line = rpc::DumpJson(Json{{"jsonrpc", "2.0"}, {"method", OutputChunk::kMethod}, {"params", ToJson(c)}});
  EXPECT_EQ(line, R"({"jsonrpc":"2.0","method":"action.output","params":{"branch":"b2","data":"one\n","session":"s1","stream":"stdout"}})");
  auto reply = rpc::DecodeReply(line);
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->notification);
  EXPECT_EQ(reply->method, "action.output");
  auto back = FromJson<OutputChunk>(reply->params, "action.output");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->data, "one\n");
  EXPECT_EQ(back->branch, "b2");
  // A type mismatch is an error, not a silent empty chunk.
  EXPECT_FALSE(FromJson<OutputChunk>(Json{{"data", 5}}, "action.output").ok());
}

TEST(OutputChunk, CommitStreamIsOptInAndStrict) {
  CommitRequest req;
  req.session = "s1";
  req.command = "make";
  // Off: not sent at all, so the request is what it always was.
  EXPECT_FALSE(ToJson(req).contains("stream"));
  req.stream = true;
  EXPECT_EQ(ToJson(req)["stream"], true);
  CommitRequest decoded;
  ASSERT_TRUE(DecodeParams(ToJson(req), decoded).ok());
  EXPECT_TRUE(decoded.stream);
  CommitRequest bad;
  Status st = DecodeParams(Json{{"session", "s1"}, {"command", "ls"}, {"stream", "yes"}}, bad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "action.commit: param \"stream\" must be true or false");
  // Only commit streams: speculate does not know the param.
  SpeculateRequest spec;
  EXPECT_FALSE(DecodeParams(Json{{"session", "s1"}, {"command", "ls"}, {"stream", true}}, spec).ok());
}

TEST(OutputChunk, Utf8CompletePrefixHoldsBackOnlyAnIncompleteCharacter) {
  EXPECT_EQ(Utf8CompletePrefix(""), 0u);
  EXPECT_EQ(Utf8CompletePrefix("abc"), 3u);
  EXPECT_EQ(Utf8CompletePrefix("caf\xc3\xa9"), 5u);   // é complete
  EXPECT_EQ(Utf8CompletePrefix("caf\xc3"), 3u);       // é's first byte waits
  EXPECT_EQ(Utf8CompletePrefix("x\xe2\x82"), 1u);     // 2 of €'s 3 bytes
  EXPECT_EQ(Utf8CompletePrefix("x\xe2\x82\xac"), 4u); // € complete
  EXPECT_EQ(Utf8CompletePrefix("x\xf0\x9f\x98"), 1u); // 3 of an emoji's 4
  // Not UTF-8 at all: nothing could complete it, so nothing waits.
  EXPECT_EQ(Utf8CompletePrefix("x\x80\x80\x80\x80"), 5u);
  EXPECT_EQ(Utf8CompletePrefix("\xff"), 1u);
}

TEST(OutputChunker, PiecesAddUpAndEveryChunkEndsOnACharacter) {
  std::vector<OutputChunk> got;
  OutputChunker chunker("s1", [&](const OutputChunk& c) { got.push_back(c); });
  // "é€" split inside both characters, across three pieces.
  chunker.Add("b1", "stdout", "a\xc3");
  chunker.Add("b1", "stdout", "\xa9\xe2\x82");
  chunker.Add("b1", "stderr", "err");
  chunker.Add("b1", "stdout", "\xac\n");
  chunker.Flush();
  std::string out, err;
  for (const auto& c : got) {
    EXPECT_EQ(c.session, "s1");
    EXPECT_EQ(c.branch, "b1");
    EXPECT_EQ(Utf8CompletePrefix(c.data), c.data.size()) << "chunk ends inside a character";
    EXPECT_FALSE(c.data.empty());
    (c.stream == "stderr" ? err : out) += c.data;
  }
  EXPECT_EQ(out, "a\xc3\xa9\xe2\x82\xac\n");
  EXPECT_EQ(err, "err");
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().data, "a");  // went out at once, without the half character
}

TEST(OutputChunker, BigOutputIsCutIntoBoundedChunksAndFlushSendsWhatWaits) {
  std::vector<OutputChunk> got;
  OutputChunker chunker("s1", [&](const OutputChunk& c) { got.push_back(c); });
  // 3 x 64 KiB of two-byte characters, offset by one byte so the natural
  // cut falls inside one; then a dangling lead byte only Flush sends.
  std::string big = "x";
  while (big.size() < 3 * OutputChunker::kMaxChunkBytes) big += "\xc3\xa9";
  chunker.Add("b1", "stdout", big);
  chunker.Add("b1", "stdout", "\xc3");
  size_t before_flush = got.size();
  chunker.Flush();
  ASSERT_EQ(got.size(), before_flush + 1);
  EXPECT_EQ(got.back().data, "\xc3");
  std::string all;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(got[i].data.size(), OutputChunker::kMaxChunkBytes);
    if (i + 1 < got.size()) {
      EXPECT_EQ(Utf8CompletePrefix(got[i].data), got[i].data.size());
    }
    all += got[i].data;
  }
  EXPECT_EQ(all, big + "\xc3");
  // Flush again: nothing is held, nothing more is sent.
  chunker.Flush();
  EXPECT_EQ(got.size(), before_flush + 1);
}

}  // namespace
}  // namespace specula::api
