// What session.create accepts as a base (runtime/core/session_base.h). No
// root needed: only lookups of paths every user can stat.
#include "runtime/core/session_base.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace specula::core {
namespace {

class SessionBaseTree : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "specula-base-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = std::filesystem::canonical(tmpl).string();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

void ExpectRefused(const std::string& base, const std::string& why) {
  Status s = CheckSessionBase(base, "/var/lib/specula");
  ASSERT_FALSE(s.ok()) << base;
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument) << base << ": " << s.error().ToString();
  EXPECT_NE(s.error().message().find(why), std::string::npos) << base << ": " << s.error().message();
  EXPECT_FALSE(s.error().hint().empty()) << base;
}

TEST_F(SessionBaseTree, PlainDirectoriesAreAccepted) {
  EXPECT_TRUE(CheckSessionBase(dir_, "/var/lib/specula").ok());
  EXPECT_TRUE(CheckSessionBase("/", "/var/lib/specula").ok()) << CheckSessionBase("/", "/var/lib/specula").ToString();
}

TEST_F(SessionBaseTree, KernelFilesystemsAreRefused) {
  ExpectRefused("/proc", "proc file system");
  ExpectRefused("/proc/sys", "proc file system");
  ExpectRefused("/sys", "sysfs file system");
  ExpectRefused("/dev", "devtmpfs file system");
  if (std::filesystem::is_directory("/sys/fs/cgroup/memory")) ExpectRefused("/sys/fs/cgroup/memory", "cgroup");
}

TEST_F(SessionBaseTree, FilesSymlinksAndOddSpellingsAreRefused) {
  std::ofstream(dir_ + "/file") << "x";
  ExpectRefused(dir_ + "/file", "is not a directory");
  std::filesystem::create_directory(dir_ + "/real");
  std::filesystem::create_directory_symlink(dir_ + "/real", dir_ + "/link");
  ExpectRefused(dir_ + "/link", "symlink");
  std::filesystem::create_directory(dir_ + "/real/sub");
  ExpectRefused(dir_ + "/link/sub", "symlink");
  ExpectRefused(dir_ + "/missing", "does not exist");
  ExpectRefused("relative/dir", "absolute path");
  ExpectRefused(dir_ + "/", "absolute path");
  ExpectRefused(dir_ + "/real/../real", "absolute path");
  ExpectRefused(dir_ + "//real", "absolute path");
  ExpectRefused("", "absolute path");
}

TEST_F(SessionBaseTree, TheStateDirIsRefused) {
  std::filesystem::create_directories(dir_ + "/state/layers");
  Status inside = CheckSessionBase(dir_ + "/state/layers", dir_ + "/state");
  ASSERT_FALSE(inside.ok());
  EXPECT_NE(inside.error().message().find("state dir"), std::string::npos);
  EXPECT_FALSE(CheckSessionBase(dir_ + "/state", dir_ + "/state").ok());
  EXPECT_TRUE(CheckSessionBase(dir_, dir_ + "/state").ok());  // above it: the sandbox masks it
}

TEST(SessionBase, MountinfoTypesAndKernelFilesystems) {
  std::string text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=10k\n"
      "24 22 0:21 / /proc rw shared:12 - proc proc rw\n"
      "25 22 0:22 / /opt\\040x rw master:7 shared:9 - fuse.sshfs host:/x rw\n";
  EXPECT_EQ(MountFsType(text, 22), "ext4");
  EXPECT_EQ(MountFsType(text, 23), "devtmpfs");
  EXPECT_EQ(MountFsType(text, 24), "proc");
  EXPECT_EQ(MountFsType(text, 25), "fuse.sshfs");
  EXPECT_EQ(MountFsType(text, 2), "");
  for (const char* t : {"proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs"}) {
    EXPECT_TRUE(IsKernelFilesystem(t)) << t;
  }
  for (const char* t : {"ext4", "btrfs", "xfs", "tmpfs", "overlay", "fuse.sshfs", ""}) {
    EXPECT_FALSE(IsKernelFilesystem(t)) << t;
  }
}

}  // namespace
}  // namespace specula::core
