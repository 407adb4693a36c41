// Trees deeper than anyone should make, made by a hostile branch: promote
// and diff refuse them with a clear error before touching anything (they
// used to overflow the daemon's stack), and the removal of such a tree
// (staging leftovers, journals) always completes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "runtime/apply/safe_fs.h"
#include "tests/apply/apply_test_util.h"
#include "tests/common/bounded_run.h"
#include "tests/common/deep_tree.h"

namespace specula::apply {
namespace {

using testing::Exists;
using testing::ReadFile;
using testing::WriteFile;

constexpr int kDeep = 12000;  // "d/" x 12,000: six times PATH_MAX

using specula::testing::DeepScratch;

// `levels` nested directories "d" below `dir`, a file "bottom" in the deepest.
void MakeChain(const std::string& dir, int levels) {
  ASSERT_TRUE(specula::testing::MakeChainWithBottom(dir, levels)) << dir << ": " << std::strerror(errno);
}

class ApplyDeepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(base.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(upper.c_str(), 0755), 0);
    WriteFile(base + "/keep", "host");
    WriteFile(upper + "/new", "from the branch");
  }
  ApplyOptions Opts() const { return {.journal_dir = journal, .crash_at = -1}; }

  DeepScratch dir{"apply-deep"};
  std::string base = dir / "base", upper = dir / "upper", journal = dir / "journal";
};

TEST_F(ApplyDeepTest, AnUpperDeeperThanTheLimitIsRefusedBeforeAnythingIsWritten) {
  ASSERT_EQ(::mkdir((upper + "/deep").c_str(), 0755), 0);
  MakeChain(upper + "/deep", kDeep);
  ASSERT_FALSE(HasFatalFailure());
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_FALSE(r.ok()) << "a 12,000-level upper was applied";
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_NE(r.error().message().find(std::to_string(kMaxUpperDepth)), std::string::npos) << r.error().ToString();
  EXPECT_FALSE(r.error().hint().empty());
  EXPECT_FALSE(Exists(base + "/new")) << "nothing may be applied";
  EXPECT_FALSE(Exists(base + "/deep"));
  EXPECT_EQ(ReadFile(base + "/keep"), "host");
}

TEST_F(ApplyDeepTest, TheLimitItselfIsAppliedOneMoreLevelIsNot) {
  // kMaxUpperDepth nested directories (deep/d/.../d) are allowed...
  ASSERT_EQ(::mkdir((upper + "/deep").c_str(), 0755), 0);
  MakeChain(upper + "/deep", kMaxUpperDepth - 1);
  ASSERT_FALSE(HasFatalFailure());
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  std::string bottom = base + "/deep";
  for (int i = 1; i < kMaxUpperDepth; ++i) bottom += "/d";
  EXPECT_EQ(ReadFile(bottom + "/bottom"), "deep\n");
  // ...one more is not (a directory at depth kMaxUpperDepth + 1).
  DeepScratch other{"apply-deep"};
  std::string upper2 = other / "upper", base2 = other / "base";
  ASSERT_EQ(::mkdir(upper2.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(base2.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((upper2 + "/deep").c_str(), 0755), 0);
  MakeChain(upper2 + "/deep", kMaxUpperDepth);
  ASSERT_FALSE(HasFatalFailure());
  auto r2 = ApplyUpper(upper2, base2, {.journal_dir = other / "journal", .crash_at = -1});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), Code::kInvalidArgument) << r2.error().ToString();
  EXPECT_FALSE(Exists(base2 + "/deep"));
}

TEST_F(ApplyDeepTest, AMergedDirectoryDeeperThanTheLimitIsRefusedToo) {
  // The base has the chain as well, so the scan merges level by level.
  ASSERT_EQ(::mkdir((upper + "/deep").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((base + "/deep").c_str(), 0755), 0);
  MakeChain(upper + "/deep", kMaxUpperDepth + 10);
  MakeChain(base + "/deep", kMaxUpperDepth + 10);
  ASSERT_FALSE(HasFatalFailure());
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_FALSE(Exists(base + "/new"));
}

TEST_F(ApplyDeepTest, DiffOfAnUpperDeeperThanTheLimitIsAClearError) {
  ASSERT_EQ(::mkdir((upper + "/deep").c_str(), 0755), 0);
  MakeChain(upper + "/deep", kDeep);
  ASSERT_FALSE(HasFatalFailure());
  auto d = DiffUpper(upper, {base});
  ASSERT_FALSE(d.ok()) << "listed " << d->entries.size() << " entries";
  EXPECT_EQ(d.error().code(), Code::kInvalidArgument) << d.error().ToString();
}

TEST(RemoveTreeAtTest, RemovesATreeFarDeeperThanPathMax) {
  DeepScratch dir{"apply-deep"};
  std::string top = dir / "top";
  ASSERT_EQ(::mkdir(top.c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/", (top + "/up").c_str()), 0);
  MakeChain(top, kDeep);
  ASSERT_FALSE(HasFatalFailure());
  UniqueFd parent(::open((dir / "").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(parent);
  Status st;
  specula::testing::RunBounded([&] { st = RemoveTreeAt(parent.get(), "top"); });
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_FALSE(Exists(top));
  EXPECT_TRUE(Exists("/etc"));
}

}  // namespace
}  // namespace specula::apply
