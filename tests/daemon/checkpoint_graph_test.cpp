#include "runtime/cli/checkpoint_graph.h"

#include <gtest/gtest.h>

namespace specula::cli {
namespace {

TEST(CheckpointGraph, LinearChainIsOneColumn) {
  std::string g = RenderCheckpointGraph({{"c1", "", "root"}, {"c2", "c1", "b"}, {"c3", "c2", "c"}});
  EXPECT_EQ(g, "* c3  c\n* c2  b\n* c1  root\n");
}

TEST(CheckpointGraph, ForkJoinsBackLikeGitLogGraph) {
  // c2 has two children, c3 (older) and c4; c5 continues c4.
  std::string g = RenderCheckpointGraph(
      {{"c1", "", ""}, {"c2", "c1", ""}, {"c3", "c2", ""}, {"c4", "c2", ""}, {"c5", "c4", ""}});
  EXPECT_EQ(g,
            "* c5\n"
            "* c4\n"
            "| * c3\n"
            "|/\n"
            "* c2\n"
            "* c1\n");
}

TEST(CheckpointGraph, ThreeSiblingsJoinAtOnce) {
  std::string g = RenderCheckpointGraph({{"r", "", ""}, {"a", "r", ""}, {"b", "r", ""}, {"c", "r", ""}});
  EXPECT_EQ(g,
            "* c\n"
            "| * b\n"
            "| | * a\n"
            "|/ /\n"
            "* r\n");
}

TEST(CheckpointGraph, InputOrderDoesNotMatterForParentsAndMissingParentIsARoot) {
  std::string g = RenderCheckpointGraph({{"c2", "c1", ""}, {"c1", "", ""}, {"x", "gone", ""}});
  // c2 and x are tips; x's parent is unknown, so x ends its own line.
  EXPECT_NE(g.find("* c1"), std::string::npos);
  EXPECT_NE(g.find("x"), std::string::npos);
  EXPECT_LT(g.find("c2"), g.find("c1"));
  EXPECT_EQ(std::count(g.begin(), g.end(), '*'), 3);
}

TEST(CheckpointGraph, CycleDoesNotHang) {
  std::string g = RenderCheckpointGraph({{"a", "b", ""}, {"b", "a", ""}});
  EXPECT_EQ(std::count(g.begin(), g.end(), '*'), 2);
}

TEST(CheckpointGraph, EmptyInput) { EXPECT_EQ(RenderCheckpointGraph({}), ""); }

}  // namespace
}  // namespace specula::cli
