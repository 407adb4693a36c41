// RemoveTree and DiskUsage on trees a sandboxed command fully controls: any
// depth (far past PATH_MAX), symlinks anywhere, directories swapped for
// symlinks while the daemon walks them. Neither may crash, give up on depth,
// or step outside the tree.
#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/spawn.h"
#include "tests/common/bounded_run.h"
#include "tests/common/deep_tree.h"

namespace specula {
namespace {

// 12,000 levels of "d/": 24,000 characters, six times PATH_MAX, and deep
// enough that one stack frame or one fd per level is a crash or EMFILE.
constexpr int kDeep = 12000;

using testing::MakeChainAt;
// Its removal is rm -rf's, not the RemoveTree under test.
using Scratch = testing::DeepScratch;

void WriteAt(int dir, const char* name, size_t bytes) {
  int fd = ::openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string chunk(1 << 16, 'x');
  for (size_t done = 0; done < bytes; done += chunk.size()) {
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  }
  ASSERT_EQ(::fsync(fd), 0);  // allocated now, so st_blocks counts it
  ::close(fd);
}

bool Exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// A deep chain with a file, a symlink to "/" and a side directory at every
// 1000th level, and a file at the bottom.
void MakeDeepTree(const std::string& root) {
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  int cur = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(cur, 0);
  for (int i = 0; i < kDeep / 1000; ++i) {
    ASSERT_EQ(::symlinkat("/", cur, "up"), 0);
    ASSERT_EQ(::mkdirat(cur, "side", 0700), 0);
    WriteAt(cur, "f", 4096);
    int next = MakeChainAt(cur, 1000);
    ::close(cur);
    ASSERT_GE(next, 0) << std::strerror(errno);
    cur = next;
  }
  WriteAt(cur, "bottom", 1 << 20);
  ::close(cur);
}

TEST(RemoveTreeTest, RemovesATreeFarDeeperThanPathMax) {
  Scratch s{"files-test"};
  std::string root = s.path() + "/tree";
  MakeDeepTree(root);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Status st;
  testing::RunBounded([&] { st = RemoveTree(root); });
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_FALSE(Exists(root));
  EXPECT_TRUE(Exists("/etc")) << "the symlinks to / were removed, not followed";
}

TEST(RemoveTreeTest, RemovesASymlinkNotWhatItPointsTo) {
  Scratch s{"files-test"};
  std::string root = s.path() + "/tree", outside = s.path() + "/outside";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((outside + "/keep").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (root + "/link").c_str()), 0);
  Status st = RemoveTree(root);
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_FALSE(Exists(root));
  EXPECT_TRUE(Exists(outside + "/keep"));
}

TEST(DiskUsageTest, CountsATreeFarDeeperThanPathMax) {
  Scratch s{"files-test"};
  std::string root = s.path() + "/tree";
  MakeDeepTree(root);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<uint64_t> r = Error(Code::kInternal, "not run");
  testing::RunBounded([&] { r = DiskUsage(root); });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_GE(*r, uint64_t{1} << 20) << "the file at the bottom, 24,000 characters down";
}

TEST(DiskUsageTest, DoesNotCountWhatASymlinkPointsTo) {
  Scratch s{"files-test"};
  std::string root = s.path() + "/tree", big = s.path() + "/big";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(big.c_str(), 0755), 0);
  int bfd = ::open(big.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  WriteAt(bfd, "blob", 8 << 20);
  ::close(bfd);
  ASSERT_EQ(::symlink(big.c_str(), (root + "/link").c_str()), 0);
  auto r = DiskUsage(root);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_LT(*r, uint64_t{1} << 20);
}

// A command that swaps a directory for a symlink to a big host directory
// while the daemon measures its branch must not make it walk the target.
TEST(DiskUsageTest, ADirectorySwappedForASymlinkDuringTheWalkIsNeverFollowed) {
  Scratch s{"files-test"};
  std::string root = s.path() + "/tree", big = s.path() + "/big";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/x").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(big.c_str(), 0755), 0);
  // The same names on both sides, so a walk that resolves x/<name> through
  // the symlink finds the big ones.
  for (int i = 0; i < 200; ++i) {
    std::string n = "/e" + std::to_string(i);
    ASSERT_EQ(::mkdir((root + "/x" + n).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((big + n).c_str(), 0755), 0);
  }
  int bfd = ::open((big + "/e0").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  WriteAt(bfd, "blob", 16 << 20);
  ::close(bfd);
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    std::string x = root + "/x", parked = root + "/x.parked";
    while (!stop.load()) {
      if (::rename(x.c_str(), parked.c_str()) != 0) continue;
      (void)::symlink(big.c_str(), x.c_str());
      ::usleep(20);  // half the time a symlink, half the time the directory
      ::unlink(x.c_str());
      (void)::rename(parked.c_str(), x.c_str());
      ::usleep(20);
    }
  });
  uint64_t worst = 0;
  int failures = 0;
  for (int i = 0; i < 400; ++i) {
    auto r = DiskUsage(root);
    if (!r.ok()) {
      ++failures;
      continue;
    }
    worst = std::max(worst, *r);
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(failures, 0) << "a racing rename is not an error";
  EXPECT_LT(worst, uint64_t{8} << 20) << "counted the symlink's target";
}

}  // namespace
}  // namespace specula
