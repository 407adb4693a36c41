#include "runtime/api/params.h"

#include <gtest/gtest.h>

namespace specula::api {
namespace {

TEST(Params, TypedAccessAndDefaults) {
  Json j{{"session", "s1"}, {"timeout_ms", 500}, {"name", nullptr}};
  Params p("action.commit", j);
  auto session = p.String("session");
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(*session, "s1");
  auto timeout = p.OptUint("timeout_ms", 0, 1000);
  ASSERT_TRUE(timeout.ok());
  EXPECT_EQ(*timeout, 500u);
  auto name = p.OptString("name", "dflt");  // null means absent
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "dflt");
  EXPECT_TRUE(p.Finish().ok());
}

TEST(Params, ErrorsNameMethodAndParam) {
  Json j{{"session", 5}, {"timeout_ms", -1}, {"sesion", "typo"}};
  Params p("action.commit", j);
  auto session = p.String("session");
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(session.error().message(), "action.commit: param \"session\" must be a string");
  EXPECT_FALSE(p.OptUint("timeout_ms", 0, 1000).ok());
  Status finish = p.Finish();
  ASSERT_FALSE(finish.ok());
  EXPECT_NE(finish.error().message().find("\"sesion\" is not a param"), std::string::npos);
}

TEST(Params, RequiredMissingEmptyAndTooLarge) {
  Json j{{"command", ""}, {"timeout_ms", 5000}};
  Params p("action.speculate", j);
  EXPECT_FALSE(p.String("session").ok());
  EXPECT_FALSE(p.String("command").ok());
  EXPECT_FALSE(p.OptUint("timeout_ms", 0, 1000).ok());
  Json f{{"timeout_ms", 1.5}};
  Params q("x", f);
  EXPECT_FALSE(q.OptUint("timeout_ms", 0, 1000).ok());
}

}  // namespace
}  // namespace specula::api
