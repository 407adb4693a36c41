#include "common/spawn.h"

#include <gtest/gtest.h>

namespace specula {
namespace {

TEST(SpawnTest, CapturesBothStreamsAndExitCode) {
  auto r = Spawn({.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->success());
}

TEST(SpawnTest, TimeoutKillsTheWholeGroup) {
  auto r = Spawn({.argv = {"sh", "-c", "sleep 100 & sleep 100"},
                  .timeout = std::chrono::milliseconds(200)});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(SpawnTest, OutputCapIsReportedNotSilent) {
  auto r = Spawn({.argv = {"sh", "-c", "head -c 5000 /dev/zero"}, .output_cap = 1000});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_TRUE(r->out_truncated);
}

TEST(SpawnTest, MissingProgramIsAnErrorNotAResult) {
  auto r = Spawn({.argv = {"/nonexistent/prog"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
}

TEST(SpawnTest, StdinIsDelivered) {
  auto r = Spawn({.argv = {"cat"}, .stdin_data = "hello"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "hello");
}

TEST(SpawnTest, ErrorLinesQuotesErrors) {
  EXPECT_EQ(ErrorLines("a\nError (x): bad\nb\n"), "Error (x): bad");
  EXPECT_EQ(ErrorLines("a\nb\n"), "a | b");
}

}  // namespace
}  // namespace specula
