// The cgroup layout read from mountinfo (sandbox/cgroup.h): a pure cgroup2
// host, the v1+v2 hybrid, and a host without cgroup2. No root needed.
#include <gtest/gtest.h>

#include "sandbox/cgroup.h"

namespace specula::sandbox {
namespace {

TEST(CgroupLayoutTest, APureCgroup2HostHasOnlyTheUnifiedRoot) {
  auto layout = ParseCgroupLayout(
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "36 25 0:31 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n");
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  EXPECT_EQ(layout->v2_root, "/sys/fs/cgroup");
  EXPECT_TRUE(layout->v1.empty());
  // Every hierarchy a sandbox's parent lives in: just the one.
  EXPECT_EQ(CgroupParentDirs(*layout, "specula"), std::vector<std::string>{"/sys/fs/cgroup/specula"});
}

TEST(CgroupLayoutTest, TheHybridMapsEachV1ControllerToItsMount) {
  auto layout = ParseCgroupLayout(
      "30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
      "34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory\n"
      "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct\n"
      "36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:16 - cgroup cgroup rw,xattr,name=systemd\n");
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  EXPECT_EQ(layout->v2_root, "/sys/fs/cgroup/unified");
  EXPECT_EQ(layout->v1.size(), 2u);
  EXPECT_EQ(layout->v1.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout->v1.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout->v1.count("cpuacct"), 0u);  // not a controller specula uses
}

TEST(CgroupLayoutTest, WithoutCgroup2ItIsUnavailableAndSaysHowToMountIt) {
  auto layout = ParseCgroupLayout("34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.error().code(), Code::kUnavailable);
  EXPECT_NE(layout.error().hint().find("cgroup2"), std::string::npos) << layout.error().ToString();
  // Lines that are not mountinfo are skipped, not misread.
  EXPECT_FALSE(ParseCgroupLayout("garbage\n - cgroup2\n\n").ok());
}

// The kernel writes a space in a mount point as \040 (and tab, newline,
// backslash likewise); the layout holds the real path. A mount point that
// is not absolute is no mountinfo line and is skipped.
TEST(CgroupLayoutTest, MountPointsAreUnescapedAndMustBeAbsolute) {
  auto layout = ParseCgroupLayout(
      "31 30 0:27 / /run/my\\040cgroups\\134x rw - cgroup2 cgroup2 rw\n"
      "34 30 0:30 / memory rw - cgroup cgroup rw,memory\n"
      "35 30 0:31 /  rw - cgroup cgroup rw,pids\n");
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  EXPECT_EQ(layout->v2_root, "/run/my cgroups\\x");
  EXPECT_TRUE(layout->v1.empty());
  EXPECT_FALSE(ParseCgroupLayout("31 30 0:27 / unified rw - cgroup2 cgroup2 rw\n").ok());
}

}  // namespace
}  // namespace specula::sandbox
