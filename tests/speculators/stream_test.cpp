// The SSE parser (line endings split across chunks, comments, multi-line
// data, the cap), the streamed-candidate parser and the prompt's budget.
#include <gtest/gtest.h>

#include "speculators/prompt.h"
#include "speculators/sse.h"

namespace specula::speculators {
namespace {

std::vector<SseEvent> FeedInPieces(const std::string& text, size_t piece) {
  SseParser p;
  std::vector<SseEvent> out;
  for (size_t i = 0; i < text.size(); i += piece) p.Feed(text.substr(i, piece), out);
  return out;
}

TEST(SseParserTest, EventsWhateverTheChunking) {
  std::string text =
      ": comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n"
      "event: content_block_delta\ndata: line1\ndata: line2\n\n"
      "data:no-space\rid: 7\rdata: x\r\n\r\n"
      "event: ignored-no-data\n\n";
  for (size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    auto ev = FeedInPieces(text, piece);
    ASSERT_EQ(ev.size(), 3u) << piece;
    EXPECT_EQ(ev[0].event, "message_start");
    EXPECT_EQ(ev[0].data, "{\"a\":1}");
    EXPECT_EQ(ev[1].event, "content_block_delta");
    EXPECT_EQ(ev[1].data, "line1\nline2");
    EXPECT_EQ(ev[2].event, "");
    EXPECT_EQ(ev[2].data, "no-space\nx");  // lines ended by CR alone
    EXPECT_EQ(ev[2].id, "7");
  }
}

TEST(SseParserTest, OverflowStopsParsing) {
  SseParser p(64);
  std::vector<SseEvent> out;
  p.Feed("data: " + std::string(100, 'x') + "\n\n", out);
  EXPECT_TRUE(p.overflowed());
  EXPECT_TRUE(out.empty());
  p.Feed("data: y\n\n", out);
  EXPECT_TRUE(out.empty());
}

TEST(CandidateStreamParserTest, CandidatesAsSoonAsTheirObjectCloses) {
  CandidateStreamParser p("m");
  std::string reply = R"({"candidates":[{"command":"ls -la","confidence":0.4},{"command":"echo \"}{\"","confidence":0.2},{"nonsense":1},{"command":"pwd"}]})";
  std::vector<size_t> after;
  std::vector<Candidate> got;
  for (char c : reply) {
    for (auto& x : p.Feed(std::string(1, c))) got.push_back(x);
    after.push_back(got.size());
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].command, "ls -la");
  EXPECT_DOUBLE_EQ(got[0].confidence, 0.4);
  EXPECT_EQ(got[1].command, "echo \"}{\"");  // braces inside strings do not count
  EXPECT_EQ(got[2].command, "pwd");
  EXPECT_DOUBLE_EQ(got[2].confidence, 0.0);
  EXPECT_EQ(got[0].source, "m");
  // The first candidate was available long before the reply ended.
  size_t first_at = 0;
  while (after[first_at] == 0) ++first_at;
  EXPECT_LT(first_at, reply.size() / 2);
}

TEST(PromptTest, CarriesTaskHistoryAndLastOutputsWithinTheBudget) {
  History h;
  h.task = "Fix the failing test in calc.py";
  for (int i = 0; i < 200; ++i) {
    Step s;
    s.command = "cat file" + std::to_string(i) + ".py";
    s.stdout_text = std::string(3000, 'a' + static_cast<char>(i % 26));
    h.steps.push_back(s);
  }
  PromptOptions o;
  o.token_budget = 2000;
  Prompt p = BuildSpeculatorPrompt(h, 3, o, {{"cat file200.py", 0.3, "builtin"}});
  EXPECT_LE(p.estimated_tokens, o.token_budget + 50);
  EXPECT_NE(p.user.find("Fix the failing test"), std::string::npos);
  EXPECT_NE(p.user.find("$ cat file199.py"), std::string::npos);  // the newest command
  EXPECT_NE(p.user.find("bytes omitted"), std::string::npos);     // its output, cut
  EXPECT_EQ(p.user.find("$ cat file0.py\n"), std::string::npos);  // the oldest did not fit
  EXPECT_GT(p.steps_omitted, 0u);
  EXPECT_EQ(p.steps_shown + p.steps_omitted, 200u);
  EXPECT_NE(p.user.find("cat file200.py (0.30)"), std::string::npos);  // the hint
  EXPECT_NE(p.system.find("up to 3"), std::string::npos);
  History empty;
  Prompt q = BuildSpeculatorPrompt(empty, 2, o);
  EXPECT_NE(q.user.find("none yet"), std::string::npos);
}

}  // namespace
}  // namespace specula::speculators
