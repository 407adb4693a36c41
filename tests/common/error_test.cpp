#include "common/error.h"

#include <gtest/gtest.h>

namespace specula {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Error(Code::kInvalidArgument, "odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  SPECULA_ASSIGN_OR_RETURN(int h, Half(x));
  SPECULA_ASSIGN_OR_RETURN(int q, Half(h).Context("second half"));
  return q;
}

Status Check(int x) {
  SPECULA_TRY_CTX(Quarter(x), "quarter " + std::to_string(x));
  return Status::Ok();
}

TEST(ErrorTest, ContextIsPrependedOnTheWayUp) {
  EXPECT_TRUE(Check(8).ok());
  Status s = Check(6);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(s.error().message(), "quarter 6: second half: odd");
}

TEST(ErrorTest, FromErrnoCarriesErrnoAndCode) {
  Error e = Error::FromErrno("open /x", ENOENT);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_EQ(e.message(), "open /x: No such file or directory");
  e.WithHint("create it first");
  EXPECT_EQ(e.ToString(), "open /x: No such file or directory (hint: create it first)");
}

}  // namespace
}  // namespace specula
