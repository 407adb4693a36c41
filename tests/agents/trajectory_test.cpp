// The trajectory format: parsing, validation, round trip, and the corpus'
// coverage of the required task families.
#include "agents/trajectory.h"

#include <gtest/gtest.h>

#include <set>

namespace specula::agents {
namespace {

TEST(TrajectoryTest, ParsesAndRoundTrips) {
  const char* text =
      R"({"type":"trajectory","name":"t1","category":"logs","task":"count"})" "\n"
      R"({"type":"step","think_ms":1500,"command":"wc -l log","exit_code":0,"stdout":"3 log\n","stderr":""})" "\n"
      "\n"
      R"({"type":"step","think_ms":900,"command":"echo draft"})" "\n";
  auto t = ParseTrajectory(text);
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  EXPECT_EQ(t->name, "t1");
  ASSERT_EQ(t->steps.size(), 2u);
  EXPECT_DOUBLE_EQ(t->steps[0].think_ms, 1500);
  ASSERT_TRUE(t->steps[0].recorded.has_value());
  EXPECT_EQ(t->steps[0].recorded->stdout_text, "3 log\n");
  EXPECT_FALSE(t->steps[1].recorded.has_value());
  auto again = ParseTrajectory(SerializeTrajectory(*t));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(SerializeTrajectory(*again), SerializeTrajectory(*t));
}

TEST(TrajectoryTest, RejectsBadInputWithTheLineNumber) {
  const char* header = R"({"type":"trajectory","name":"t"})";
  struct Case {
    std::string text, want;
  } cases[] = {
      {"", "no header"},
      {std::string(header) + "\n", "no steps"},
      {R"({"type":"step","command":"x"})", "line 1: step before header"},
      {std::string(header) + "\n{nope", "line 2: not a JSON object"},
      {std::string(header) + "\n" + R"({"type":"step","command":""})", "line 2: empty command"},
      {std::string(header) + "\n" + R"({"type":"step","command":"x","think_ms":-1})", "negative"},
      {std::string(header) + "\n" + R"({"type":"step","command":"x","think_ms":"slow"})", "trajectory:"},
      {std::string(header) + "\n" + R"({"type":"bogus"})", "unknown type"},
      {R"({"type":"trajectory","name":"a/b"})", "without '/'"},
  };
  for (const auto& c : cases) {
    auto t = ParseTrajectory(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.error().code(), Code::kInvalidArgument);
    EXPECT_NE(t.error().message().find(c.want), std::string::npos) << t.error().message();
  }
}

TEST(TrajectoryTest, CorpusCoversTheRequiredFamilies) {
  auto corpus = LoadCorpus(DefaultCorpusDir());
  ASSERT_TRUE(corpus.ok()) << corpus.error().ToString();
  EXPECT_GE(corpus->size(), 30u);
  std::set<std::string> categories;
  for (const auto& t : *corpus) {
    categories.insert(t.category);
    EXPECT_FALSE(t.task.empty()) << t.name;
    EXPECT_GE(t.steps.size(), 5u) << t.name;
    for (const auto& s : t.steps) {
      EXPECT_TRUE(s.recorded.has_value()) << t.name << ": " << s.command;
      EXPECT_GT(s.think_ms, 0) << t.name;
    }
  }
  for (const char* c : {"users", "permissions", "config", "logs", "cron", "build", "service",
                        "backup", "deb"}) {
    EXPECT_TRUE(categories.count(c)) << "no trajectory of category " << c;
  }
}

}  // namespace
}  // namespace specula::agents
