// DiffUpper on uppers produced by real overlay mounts, over one and two layers.
#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "tests/apply/apply_test_util.h"

namespace specula::apply {
namespace {

using testing::OverlayMount;
using testing::Sh;
using testing::TempDir;

class ApplyDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::EnterPrivateMountNamespace();
    Sh("/", "mkdir -p '" + base + "' && cd '" + base + "' && mkdir -p etc www/sub && "
            "printf 'a\\nb\\nc\\n' > etc/conf && echo same > etc/chmodded && echo x > etc/gone && "
            "echo p > www/page && echo s > www/sub/s && ln -s etc/conf link");
  }
  std::map<std::string, DiffEntry> Diff(const std::string& up, const std::vector<std::string>& lowers) {
    auto d = DiffUpper(up, lowers);
    EXPECT_TRUE(d.ok()) << d.error().ToString();
    std::map<std::string, DiffEntry> out;
    if (d.ok()) for (auto& e : d->entries) out[e.path] = e;
    return out;
  }

  TempDir dir;
  std::string base = dir / "base";
};

TEST_F(ApplyDiffTest, ListsAddedChangedDeletedWithUnifiedDiffs) {
  std::string upper = dir / "upper";
  {
    OverlayMount ovl(base, upper, dir / "work", dir / "merged");
    ASSERT_TRUE(ovl.mounted()) << std::strerror(ovl.error());
    Sh(dir / "merged", "printf 'a\\nB\\nc\\n' > etc/conf && chmod 0600 etc/chmodded && rm etc/gone && "
                       "echo hi > etc/new && rm -rf www && mkdir www && echo i > www/index && "
                       "rm link && ln -s elsewhere link");
  }
  auto d = Diff(upper, {base});
  ASSERT_TRUE(d.count("etc/conf"));
  EXPECT_EQ(d["etc/conf"].kind, DiffKind::kChanged);
  EXPECT_TRUE(d["etc/conf"].content_changed);
  EXPECT_NE(d["etc/conf"].unified_diff.find("-b\n+B\n"), std::string::npos) << d["etc/conf"].unified_diff;
  EXPECT_NE(d["etc/conf"].unified_diff.find("--- a/etc/conf"), std::string::npos);
  ASSERT_TRUE(d.count("etc/chmodded"));
  EXPECT_FALSE(d["etc/chmodded"].content_changed) << "only the mode changed";
  EXPECT_TRUE(d["etc/chmodded"].unified_diff.empty());
  ASSERT_TRUE(d.count("etc/gone"));
  EXPECT_EQ(d["etc/gone"].kind, DiffKind::kDeleted);
  ASSERT_TRUE(d.count("etc/new"));
  EXPECT_EQ(d["etc/new"].kind, DiffKind::kAdded);
  EXPECT_NE(d["etc/new"].unified_diff.find("+hi"), std::string::npos);
  // The opaque www/ hides page and sub/ of the base.
  EXPECT_EQ(d["www/page"].kind, DiffKind::kDeleted);
  EXPECT_EQ(d["www/sub"].kind, DiffKind::kDeleted);
  EXPECT_EQ(d["www/sub"].type, 'd');
  EXPECT_EQ(d["www/index"].kind, DiffKind::kAdded);
  EXPECT_EQ(d["link"].kind, DiffKind::kChanged);
  EXPECT_EQ(d["link"].type, 'l');
  EXPECT_TRUE(d["link"].content_changed);
  EXPECT_FALSE(d.count("etc")) << "a merged dir with unchanged attributes is not listed";
}

TEST_F(ApplyDiffTest, HonoursWhiteoutsInLowerLayers) {
  // Layer 1 deletes etc/gone; the branch on top re-creates it.
  std::string layer1 = dir / "layer1", upper = dir / "upper";
  {
    OverlayMount ovl(base, layer1, dir / "work1", dir / "merged1");
    ASSERT_TRUE(ovl.mounted()) << std::strerror(ovl.error());
    Sh(dir / "merged1", "rm etc/gone");
  }
  {
    OverlayMount ovl(layer1 + ":" + base, upper, dir / "work2", dir / "merged2");
    ASSERT_TRUE(ovl.mounted()) << std::strerror(ovl.error());
    Sh(dir / "merged2", "echo back > etc/gone && echo more >> etc/conf");
  }
  auto d = Diff(upper, {layer1, base});
  ASSERT_TRUE(d.count("etc/gone"));
  EXPECT_EQ(d["etc/gone"].kind, DiffKind::kAdded) << "layer 1's whiteout hides the base's file";
  EXPECT_EQ(d["etc/conf"].kind, DiffKind::kChanged);
}

}  // namespace
}  // namespace specula::apply
