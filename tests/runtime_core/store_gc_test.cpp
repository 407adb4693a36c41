// CheckpointStore::RemoveOrphans: what a crash leaves between writing files
// and recording them goes; everything a row reaches stays.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "common/files.h"
#include "common/time.h"
#include "runtime/store/checkpoint_store.h"

namespace specula::store {
namespace {

const StoreOptions kNoFs{false};  // unit test: no loop-mounted layer filesystem

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

class StoreGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/specula-store-gc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = CheckpointStore::Open(dir_, kNoFs);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->PutSession(SessionRecord{"s1", "n", "/", "layer", "", "", "", NowMs()}).ok());
  }
  void TearDown() override {
    store_.reset();
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }
  // A sealed layer of session s1 holding one file.
  LayerRecord Seal(const std::string& name) {
    std::string upper = dir_ + "/branches/" + name;
    EXPECT_TRUE(MakeDirs(upper).ok());
    std::ofstream(upper + "/f") << name;
    auto l = store_->SealLayer("s1", upper);
    EXPECT_TRUE(l.ok()) << l.error().ToString();
    return l.ok() ? *l : LayerRecord{};
  }
  CheckpointRecord Ckpt(const std::string& id, const std::string& parent, std::vector<std::string> layers,
                        bool image) {
    CheckpointRecord c;
    c.id = id;
    c.session = "s1";
    c.parent = parent;
    c.command = "cmd " + id;
    c.created_ms = NowMs();
    c.layers = std::move(layers);
    c.shell_state = "cwd=/\n";
    if (image) {
      c.has_process_image = true;
      c.image_dir = store_->ImageDir(id);
      EXPECT_TRUE(MakeDirs(c.image_dir).ok());
      std::ofstream(c.image_dir + "/core-1.img") << "img";
    }
    return c;
  }
  std::string dir_;
  std::unique_ptr<CheckpointStore> store_;
};

TEST_F(StoreGcTest, RemovesUnrecordedImagesAndLayersKeepsRecordedOnes) {
  LayerRecord kept = Seal("one");
  ASSERT_TRUE(store_->PutCheckpointAsHead(Ckpt("c1", "", {kept.id}, /*image=*/true)).ok());
  // A crash after sealing a layer and dumping, before the checkpoint row:
  LayerRecord unlisted = Seal("two");
  ASSERT_TRUE(MakeDirs(store_->ImageDir("c2")).ok());
  std::ofstream(store_->ImageDir("c2") + "/core-1.img") << "img";
  // A layer dir with no row at all (crash between mkdir and INSERT, or an
  // interrupted DeleteSession), sealed read-only like the others.
  std::string stray = dir_ + "/layers/lstray";
  ASSERT_TRUE(MakeDirs(stray + "/fs").ok());
  ASSERT_EQ(::chmod(stray.c_str(), 0500), 0);

  auto rep = store_->RemoveOrphans();
  ASSERT_TRUE(rep.ok()) << rep.error().ToString();
  EXPECT_EQ(rep->image_dirs, 1u);
  EXPECT_EQ(rep->layer_rows, 1u);
  EXPECT_EQ(rep->layer_dirs, 2u);  // the unlisted layer's dir and the stray one
  EXPECT_FALSE(Exists(store_->ImageDir("c2")));
  EXPECT_FALSE(Exists(dir_ + "/layers/" + unlisted.id));
  EXPECT_FALSE(Exists(stray));
  EXPECT_FALSE(store_->GetLayer(unlisted.id).ok());
  // What the database reaches is untouched.
  EXPECT_TRUE(Exists(store_->ImageDir("c1") + "/core-1.img"));
  EXPECT_TRUE(Exists(store_->LayerPath(kept.id) + "/f"));
  EXPECT_TRUE(store_->GetLayer(kept.id).ok());
  EXPECT_TRUE(store_->GetCheckpoint("c1").ok());

  // Idempotent: nothing more to remove.
  auto again = store_->RemoveOrphans();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->image_dirs + again->layer_rows + again->layer_dirs, 0u);
}

TEST_F(StoreGcTest, LayersSharedByOlderCheckpointsStay) {
  LayerRecord a = Seal("a"), b = Seal("b");
  ASSERT_TRUE(store_->PutCheckpointAsHead(Ckpt("c1", "", {a.id}, false)).ok());
  ASSERT_TRUE(store_->PutCheckpointAsHead(Ckpt("c2", "c1", {a.id, b.id}, false)).ok());
  // A rollback moves the head back; c2 and its layer b still exist.
  ASSERT_TRUE(store_->SetHead("s1", "c1").ok());
  auto rep = store_->RemoveOrphans();
  ASSERT_TRUE(rep.ok()) << rep.error().ToString();
  EXPECT_EQ(rep->layer_rows + rep->layer_dirs + rep->image_dirs, 0u);
  EXPECT_TRUE(Exists(store_->LayerPath(b.id)));
}

TEST_F(StoreGcTest, DeleteSessionRemovesItsApplyJournalsOnly) {
  ASSERT_TRUE(store_->PutSession(SessionRecord{"s2", "n2", "/", "base", "", "", "", NowMs()}).ok());
  CheckpointRecord mine = Ckpt("c1", "", {}, false);
  CheckpointRecord other = Ckpt("c2", "", {}, false);
  other.session = "s2";
  ASSERT_TRUE(store_->PutCheckpointAsHead(mine).ok());
  ASSERT_TRUE(store_->PutCheckpointAsHead(other).ok());
  const std::string j1 = store_->JournalDir() + "/s1.c1", j2 = store_->JournalDir() + "/s2.c2";
  ASSERT_TRUE(MakeDirs(j1 + "/pre").ok());
  ASSERT_TRUE(MakeDirs(j2 + "/pre").ok());
  ASSERT_TRUE(store_->DeleteSession("s1").ok());
  EXPECT_FALSE(Exists(j1));
  EXPECT_TRUE(Exists(j2));
}

}  // namespace
}  // namespace specula::store
