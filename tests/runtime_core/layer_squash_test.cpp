// SquashLayers on a sealed layer a branch shaped at will: a directory chain
// deeper than the squash walks is refused with a clear error (it recursed
// once per level), and a layer within the bound still squashes.
#include "runtime/core/layer_squash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "common/files.h"
#include "tests/common/deep_tree.h"

namespace specula::core {
namespace {

using Scratch = specula::testing::DeepScratch;

// `levels` nested directories "d" below a new `dir`, a file in the deepest.
void MakeChain(const std::string& dir, int levels) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_TRUE(specula::testing::MakeChainWithBottom(dir, levels)) << std::strerror(errno);
}

TEST(LayerSquashTest, ALayerDeeperThanTheBoundIsRefusedWithAClearError) {
  Scratch s{"squash-test"};
  MakeChain(s / "l1", 1100);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  ASSERT_EQ(::mkdir((s / "l2").c_str(), 0755), 0);
  Status st = SquashLayers({s / "l1", s / "l2"}, s / "out");
  ASSERT_FALSE(st.ok()) << "squashed a 1,100-level layer";
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << st.error().ToString();
  EXPECT_NE(st.error().message().find("1024"), std::string::npos) << st.error().ToString();
}

TEST(LayerSquashTest, ALayerWithinTheBoundSquashes) {
  Scratch s{"squash-test"};
  MakeChain(s / "l1", 200);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  ASSERT_EQ(::mkdir((s / "l2").c_str(), 0755), 0);
  Status st = SquashLayers({s / "l1", s / "l2"}, s / "out");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  std::string bottom = s / "out";
  for (int i = 0; i < 200; ++i) bottom += "/d";
  struct stat sb {};
  EXPECT_EQ(::lstat((bottom + "/bottom").c_str(), &sb), 0);
}

}  // namespace
}  // namespace specula::core
