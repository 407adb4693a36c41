#include "runtime/rpc/framing.h"

#include <gtest/gtest.h>

namespace specula::rpc {
namespace {

TEST(LineBuffer, SplitsLinesAcrossAppends) {
  LineBuffer b(100);
  b.Append("{\"a\":1}\n{\"b\"");
  EXPECT_EQ(b.NextLine(), "{\"a\":1}");
  EXPECT_EQ(b.NextLine(), std::nullopt);
  b.Append(":2}\r\n\n");
  EXPECT_EQ(b.NextLine(), "{\"b\":2}");  // CRLF tolerated
  EXPECT_EQ(b.NextLine(), "");           // blank line is a line
  EXPECT_EQ(b.NextLine(), std::nullopt);
  EXPECT_EQ(b.buffered(), 0u);
}

TEST(LineBuffer, ByteAtATime) {
  LineBuffer b(100);
  std::string text = "one\ntwo\nthree\n";
  std::vector<std::string> lines;
  for (char c : text) {
    b.Append(std::string_view(&c, 1));
    while (auto l = b.NextLine()) lines.push_back(*l);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
}

TEST(LineBuffer, OverflowOnlyForUnterminatedTailOverCap) {
  LineBuffer b(8);
  b.Append("12345678");
  EXPECT_EQ(b.NextLine(), std::nullopt);
  EXPECT_FALSE(b.Overflowed());  // exactly the cap is allowed
  b.Append("9");
  EXPECT_EQ(b.NextLine(), std::nullopt);
  EXPECT_TRUE(b.Overflowed());
}

TEST(LineBuffer, CompleteLongLineIsReturnedForTheCallerToReject) {
  LineBuffer b(4);
  b.Append("toolong\nok\n");
  auto first = b.NextLine();
  ASSERT_TRUE(first);
  EXPECT_GT(first->size(), 4u);
  EXPECT_EQ(b.NextLine(), "ok");
}

TEST(LineBuffer, ManyLinesKeepMemoryBounded) {
  LineBuffer b(64);
  for (int i = 0; i < 100000; ++i) {
    b.Append("{\"x\":" + std::to_string(i) + "}\n{\"partial");
    EXPECT_TRUE(b.NextLine());
    EXPECT_FALSE(b.NextLine());
    EXPECT_LT(b.buffered(), 64u);
    b.Append("\":1}\n");
    EXPECT_EQ(b.NextLine(), "{\"partial\":1}");
  }
}

}  // namespace
}  // namespace specula::rpc
