// The store's own filesystem (runtime/store/store_fs.cpp, branch_volume.cpp,
// btrfs.cpp) against the real kernel, as root: btrfs with quotas, branch
// volumes with their disk limit, sealing a full volume, inode numbers that
// stay unique along a stack of layers, crash leftovers (subvolumes, stale
// qgroups), the full-qgroup fallback, and ext4 stores of older builds.
#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/files.h"
#include "common/time.h"
#include "runtime/store/btrfs.h"
#include "runtime/store/checkpoint_store.h"
#include "runtime/store/sqlite_db.h"

namespace specula::store {
namespace {

constexpr uint64_t kMiB = 1ULL << 20;

// Writes `bytes` of zeros to `path`; the errno that stopped it, 0 if none.
int WriteZeros(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  static char chunk[1 << 20];
  int err = 0;
  for (uint64_t done = 0; done < bytes && err == 0; done += sizeof(chunk)) {
    if (::write(fd, chunk, sizeof(chunk)) < 0) err = errno;
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  return err;
}

ino_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

class StoreFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting the store's image needs root";
    char tmpl[] = "/tmp/specula-store-fs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    store_.reset();  // unmounts
    if (!dir_.empty()) {
      ASSERT_TRUE(RemoveTree(dir_).ok());
    }
  }
  void Open(const StoreOptions& o = {}) {
    store_.reset();
    auto s = CheckpointStore::Open(dir_, o);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
  }
  void PutSession(const std::string& id) {
    ASSERT_TRUE(store_->PutSession(SessionRecord{id, id, "/", "layer", "", "", "", NowMs()}).ok());
  }
  // A volume forked from `stack` holding `file`, sealed as a layer of s1.
  std::string SealWith(const std::string& branch, const std::vector<std::string>& stack, const std::string& file,
                       uint64_t bytes = 0) {
    VolumeRequest req;
    req.stack = stack;
    req.root_like = "/";
    auto v = store_->CreateBranchVolume(branch, req);
    EXPECT_TRUE(v.ok()) << v.error().ToString();
    if (!v.ok()) return "";
    if (bytes > 0) {
      EXPECT_EQ(WriteZeros(v->upper + "/" + file, bytes), 0);
    } else {
      std::ofstream(v->upper + "/" + file) << branch;
    }
    auto l = store_->SealLayer("s1", v->upper);
    EXPECT_TRUE(l.ok()) << l.error().ToString();
    EXPECT_TRUE(RemoveTree(v->dir).ok());
    return l.ok() ? l->id : "";
  }

  std::string dir_;
  std::unique_ptr<CheckpointStore> store_;
};

TEST_F(StoreFsTest, ANewStoreIsBtrfsWithSimpleQuotas) {
  Open();
  EXPECT_EQ(store_->fs_info().type, "btrfs");
  EXPECT_EQ(store_->fs_info().quota, btrfs::QuotaMode::kSimple) << store_->fs_info().note;
  EXPECT_TRUE(store_->fs_info().limits_enforced());
  // Reopened (a restart): the same filesystem, quotas still on.
  Open();
  EXPECT_EQ(store_->fs_info().quota, btrfs::QuotaMode::kSimple);
}

TEST_F(StoreFsTest, AVolumeStopsWritesAtItsLimitAndStillSeals) {
  Open();
  PutSession("s1");
  VolumeRequest req;
  req.disk_limit = 8 * kMiB;
  req.root_like = "/";
  auto v = store_->CreateBranchVolume("b1", req);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  struct stat root {}, upper {};
  ASSERT_EQ(::stat("/", &root), 0);
  ASSERT_EQ(::stat(v->upper.c_str(), &upper), 0);
  EXPECT_EQ(upper.st_mode & 07777, root.st_mode & 07777) << "the upper's root takes the base root's mode";
  EXPECT_EQ(upper.st_uid, root.st_uid);

  EXPECT_EQ(WriteZeros(v->upper + "/big", 20 * kMiB), EDQUOT);
  auto use = store_->BranchDiskUsage("b1");
  ASSERT_TRUE(use.has_value());
  EXPECT_EQ(use->limit, 8 * kMiB);
  EXPECT_GE(use->used + kMiB, 8 * kMiB);
  EXPECT_LE(use->used, 8 * kMiB);
  // Full: even a rename in it fails, which is why sealing lifts the limit.
  auto l = store_->SealLayer("s1", v->upper);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  EXPECT_TRUE(Exists(l->path + "/big"));
  EXPECT_FALSE(Exists(store_->LayerPath(l->id) + "/../work")) << "the work dir's index links must not be sealed";
  EXPECT_LE(l->bytes, 9 * kMiB);
  EXPECT_FALSE(Exists(v->volume));
  ASSERT_TRUE(RemoveTree(v->dir).ok());
  // The next volume has the whole limit again.
  auto next = store_->CreateBranchVolume("b2", req);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(WriteZeros(next->upper + "/f", 6 * kMiB), 0);
  ASSERT_TRUE(store_->LiftDiskLimit("b2").ok());
  EXPECT_EQ(WriteZeros(next->upper + "/g", 6 * kMiB), 0) << "no limit once lifted";
  ASSERT_TRUE(store_->DeleteSession("s1").ok());
  EXPECT_FALSE(Exists(l->path));
}

// Each subvolume numbers its inodes on its own and overlayfs shows the real
// numbers: a layer and the upper above it must never share one.
TEST_F(StoreFsTest, InodeNumbersGrowAlongAStackOfLayers) {
  Open();
  PutSession("s1");
  std::string l1 = SealWith("b1", {}, "one");
  std::string l2 = SealWith("b2", {l1}, "two");
  std::string l3 = SealWith("b3", {l1, l2}, "three");
  ino_t i1 = Inode(store_->LayerPath(l1) + "/one");
  ino_t i2 = Inode(store_->LayerPath(l2) + "/two");
  ino_t i3 = Inode(store_->LayerPath(l3) + "/three");
  EXPECT_LT(i1, i2);
  EXPECT_LT(i2, i3);
  // The source's files are kept out of the way, never in the layer itself.
  EXPECT_FALSE(Exists(store_->LayerPath(l2) + "/one"));
  EXPECT_FALSE(Exists(store_->LayerPath(l3) + "/two"));
  // A stack whose newest layer is not its topmost (a squash puts a new
  // layer at the bottom): the volume continues from the newest.
  VolumeRequest req;
  req.stack = {l3, l1};
  auto v = store_->CreateBranchVolume("b4", req);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  std::ofstream(v->upper + "/four") << "4";
  EXPECT_GT(Inode(v->upper + "/four"), i3);
  // Siblings of one checkpoint may share numbers: they are never stacked.
  ASSERT_TRUE(RemoveTree(v->dir).ok());
}

TEST_F(StoreFsTest, LeftoversOfACrashAreRemoved) {
  Open();
  PutSession("s1");
  // A branch volume whose branch dir a crash left, and a sealed volume that
  // never reached the database.
  VolumeRequest req;
  req.disk_limit = 4 * kMiB;
  auto v = store_->CreateBranchVolume("b1", req);
  ASSERT_TRUE(v.ok());
  std::ofstream(v->upper + "/f") << "x";
  auto orphan = store_->CreateBranchVolume("b2", req);
  ASSERT_TRUE(orphan.ok());
  std::string container = dir_ + "/fs/layers/lorphan";
  ASSERT_EQ(::rename(orphan->volume.c_str(), container.c_str()), 0);
  // Volumes of discarded branches: their qgroups must not pile up.
  for (int i = 0; i < 5; ++i) {
    std::string b = "d" + std::to_string(i);
    ASSERT_TRUE(store_->CreateBranchVolume(b, req).ok());
    ASSERT_TRUE(RemoveTree(store_->BranchDir(b)).ok());
  }
  store_.reset();
  Open();
  auto rep = store_->RemoveOrphans();
  ASSERT_TRUE(rep.ok()) << rep.error().ToString();
  EXPECT_EQ(rep->layer_dirs, 1u);
  EXPECT_FALSE(Exists(container));
  // Once the kernel has freed them, the only qgroup left is the one of the
  // only volume left (the kernel drops some itself, RemoveOrphans the rest).
  auto fs = btrfs::Filesystem::Open(dir_ + "/fs");
  ASSERT_TRUE(fs.ok());
  std::set<std::string> live;
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(fs->Sync().ok());
    ASSERT_TRUE(store_->RemoveOrphans().ok());
    live.clear();
    for (const auto& e : std::filesystem::directory_iterator("/sys/fs/btrfs/" + fs->uuid() + "/qgroups")) {
      std::string n = e.path().filename();
      if (n.rfind("0_", 0) == 0 && std::stoull(n.substr(2)) >= 256) live.insert(n);
    }
    if (live.size() <= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(live.size(), 1u) << "only b1's volume is left";
  // Crash recovery removes branch dirs with RemoveTree: the subvolume too.
  ASSERT_TRUE(RemoveTree(v->dir).ok());
  EXPECT_FALSE(Exists(v->dir));
  ASSERT_TRUE(RemoveTree(orphan->dir).ok());
}

// Kernels before 6.7: classic qgroups count a snapshot's shared extents as
// "referenced", so the limit is on "exclusive": only what the branch wrote.
TEST_F(StoreFsTest, FullQgroupsLimitWhatTheBranchWrote) {
  StoreOptions o;
  o.full_qgroups = true;
  Open(o);
  ASSERT_EQ(store_->fs_info().quota, btrfs::QuotaMode::kFull) << store_->fs_info().note;
  PutSession("s1");
  std::string l1 = SealWith("b1", {}, "big", 12 * kMiB);
  VolumeRequest req;
  req.stack = {l1};
  req.disk_limit = 8 * kMiB;
  auto v = store_->CreateBranchVolume("b2", req);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(WriteZeros(v->upper + "/f", 6 * kMiB), 0) << "the 12 MiB inherited from the layer must not count";
  EXPECT_EQ(WriteZeros(v->upper + "/g", 8 * kMiB), EDQUOT);
  auto l = store_->SealLayer("s1", v->upper);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  ASSERT_TRUE(RemoveTree(v->dir).ok());
}

// What older builds made: ext4, no limits. Kept while it holds a session;
// converted to btrfs once it holds none.
TEST_F(StoreFsTest, AnExt4StoreOfAnOlderBuildKeepsWorkingAndIsConvertedWhenEmpty) {
  StoreOptions o;
  o.new_fs = StoreFsType::kExt4;
  Open(o);
  ASSERT_EQ(store_->fs_info().type, "ext4");
  PutSession("s1");
  std::string l1 = SealWith("b1", {}, "kept");
  Open();  // a new build on the old store
  EXPECT_EQ(store_->fs_info().type, "ext4");
  EXPECT_FALSE(store_->fs_info().limits_enforced());
  EXPECT_NE(store_->fs_info().note.find("older specula"), std::string::npos) << store_->fs_info().note;
  EXPECT_TRUE(Exists(store_->LayerPath(l1) + "/kept"));
  VolumeRequest req;
  req.disk_limit = 4 * kMiB;
  auto v = store_->CreateBranchVolume("b2", req);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(WriteZeros(v->upper + "/f", 8 * kMiB), 0) << "no limit on ext4";
  EXPECT_FALSE(store_->BranchDiskUsage("b2").has_value());
  ASSERT_TRUE(RemoveTree(v->dir).ok());
  ASSERT_TRUE(store_->DeleteSession("s1").ok());
  Open();
  EXPECT_EQ(store_->fs_info().type, "btrfs");
  EXPECT_TRUE(store_->fs_info().limits_enforced());
}

TEST_F(StoreFsTest, WithoutADedicatedFilesystemVolumesArePlainDirectories) {
  StoreOptions o;
  o.dedicated_fs = false;
  Open(o);
  EXPECT_EQ(store_->fs_info().type, "none");
  PutSession("s1");
  VolumeRequest req;
  req.disk_limit = kMiB;
  req.root_like = "/";
  auto v = store_->CreateBranchVolume("b1", req);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->upper, store_->BranchUpperDir("b1"));
  EXPECT_TRUE(Exists(v->work));
  auto l = store_->SealLayer("s1", v->upper);
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  ASSERT_TRUE(RemoveTree(v->dir).ok());
}

// Builds before schema 3 sealed every layer with a 0700 root (issue 16):
// opening such a store gives those roots their base's mode and owner, and
// leaves a root an action chmod'ed alone.
TEST_F(StoreFsTest, LayerRootsOfAnOlderBuildGetTheBasesMode) {
  StoreOptions o;
  o.dedicated_fs = false;
  Open(o);
  PutSession("s1");
  std::string dflt = SealWith("b1", {}, "a");
  std::string chmodded = SealWith("b2", {}, "b");
  ASSERT_EQ(::chmod(store_->LayerPath(dflt).c_str(), 0700), 0);
  ASSERT_EQ(::chmod(store_->LayerPath(chmodded).c_str(), 0751), 0);
  store_.reset();
  {
    auto db = SqliteDb::Open(dir_ + "/specula.db");
    ASSERT_TRUE(db.ok());
    // A version-2 database: without the columns later versions add.
    ASSERT_TRUE(db->Exec("ALTER TABLE branches DROP COLUMN origin").ok());
    ASSERT_TRUE(db->Exec("PRAGMA user_version=2").ok());
  }
  Open(o);
  struct stat root {}, a {}, b {};
  ASSERT_EQ(::stat("/", &root), 0);
  ASSERT_EQ(::stat(store_->LayerPath(dflt).c_str(), &a), 0);
  ASSERT_EQ(::stat(store_->LayerPath(chmodded).c_str(), &b), 0);
  EXPECT_EQ(a.st_mode & 07777, root.st_mode & 07777);
  EXPECT_EQ(b.st_mode & 07777, 0751u);
}

}  // namespace
}  // namespace specula::store
