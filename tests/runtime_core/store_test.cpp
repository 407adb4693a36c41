// Checkpoint store: schema, records, layer sealing, ids.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "common/files.h"
#include "common/time.h"
#include "runtime/store/checkpoint_store.h"

namespace specula::store {
namespace {

// Unit tests need no root: no loop-mounted layer filesystem.
const StoreOptions kNoFs{false};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/specula-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(dir_).ok()); }
  std::string dir_;
};

SessionRecord Session(const std::string& id) {
  return SessionRecord{id, "name-" + id, "/", "layer", "", "", "", NowMs()};
}

CheckpointRecord Ckpt(const std::string& id, const std::string& session, const std::string& parent) {
  CheckpointRecord c;
  c.id = id;
  c.session = session;
  c.parent = parent;
  c.command = "echo " + id;
  c.created_ms = NowMs();
  c.layers = {"l1", "l2"};
  c.shell_state = "cwd=/\n";
  return c;
}

TEST(IdTest, ShortPrintableAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = NewId('c');
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(id->size(), 9u);
    EXPECT_EQ((*id)[0], 'c');
    for (char ch : id->substr(1)) EXPECT_TRUE((ch >= 'a' && ch <= 'z') || (ch >= '2' && ch <= '7')) << *id;
    EXPECT_TRUE(seen.insert(*id).second);
  }
}

TEST_F(StoreTest, RejectsRelativeStateDir) {
  auto s = CheckpointStore::Open("relative/dir");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, SessionsCheckpointsBranchesRoundTrip) {
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto& st = **store;
  ASSERT_TRUE(st.PutSession(Session("s1")).ok());
  auto dup = st.PutSession(Session("s1"));
  EXPECT_FALSE(dup.ok());
  auto bad = Session("s2");
  bad.target = "elsewhere";
  EXPECT_EQ(st.PutSession(bad).error().code(), Code::kInvalidArgument);

  ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt("c1", "s1", "")).ok());
  auto c2 = Ckpt("c2", "s1", "c1");
  c2.has_process_image = true;
  c2.image_dir = "/x";
  c2.image_bytes = 1234;
  ASSERT_TRUE(st.PutCheckpointAsHead(c2).ok());
  // A parent that does not exist violates the foreign key.
  auto orphan = st.PutCheckpoint(Ckpt("c3", "s1", "nope"));
  ASSERT_FALSE(orphan.ok());

  auto s = st.GetSession("s1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->head, "c2");
  auto got = st.GetCheckpoint("c2");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->parent, "c1");
  EXPECT_EQ(got->layers, (std::vector<std::string>{"l1", "l2"}));
  EXPECT_TRUE(got->has_process_image);
  EXPECT_EQ(got->image_bytes, 1234u);
  auto root = st.GetCheckpoint("c1");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->parent, "");
  EXPECT_EQ(st.GetCheckpoint("zz").error().code(), Code::kNotFound);

  // The head must belong to the session.
  ASSERT_TRUE(st.PutSession(Session("s2")).ok());
  EXPECT_EQ(st.SetHead("s2", "c1").error().code(), Code::kNotFound);
  ASSERT_TRUE(st.SetHead("s1", "c1").ok());

  BranchRecord b{"b1", "s1", "c1", "make", "running", "", NowMs(), NowMs()};
  ASSERT_TRUE(st.PutBranch(b).ok());
  ASSERT_TRUE(st.UpdateBranch("b1", "done", std::string("{\"exit_code\":0}")).ok());
  ASSERT_TRUE(st.UpdateBranch("b1", "promoted").ok());
  auto gb = st.GetBranch("b1");
  ASSERT_TRUE(gb.ok());
  EXPECT_EQ(gb->state, "promoted");
  EXPECT_EQ(gb->result_json, "{\"exit_code\":0}");
  EXPECT_EQ(st.UpdateBranch("b9", "done").error().code(), Code::kNotFound);

  auto list = st.ListCheckpoints("s1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  auto sessions = st.ListSessions();
  ASSERT_TRUE(sessions.ok());
  EXPECT_EQ(sessions->size(), 2u);
}

TEST_F(StoreTest, SurvivesReopenAndRefusesNewerSchema) {
  {
    auto store = CheckpointStore::Open(dir_, kNoFs);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutSession(Session("s1")).ok());
    ASSERT_TRUE((*store)->PutCheckpointAsHead(Ckpt("c1", "s1", "")).ok());
  }
  {
    auto store = CheckpointStore::Open(dir_, kNoFs);
    ASSERT_TRUE(store.ok());
    auto s = (*store)->GetSession("s1");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->head, "c1");
  }
  {
    auto db = SqliteDb::Open(dir_ + "/specula.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("PRAGMA user_version=99").ok());
  }
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), Code::kFailedPrecondition);
}

TEST_F(StoreTest, BranchOutcomeFieldsRoundTripAndPartialUpdatesKeepTheRest) {
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto& st = **store;
  ASSERT_TRUE(st.PutSession(Session("s1")).ok());
  ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt("c1", "s1", "")).ok());
  ASSERT_TRUE(st.PutBranch(BranchRecord{"b1", "s1", "c1", "make", "running", "", NowMs(), NowMs()}).ok());
  auto fresh = st.GetBranch("b1");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->report_json, "");
  EXPECT_EQ(fresh->error, "");
  EXPECT_EQ(fresh->upper_bytes, 0u);
  EXPECT_EQ(fresh->reason, "");

  BranchUpdate done;
  done.state = "done";
  done.result_json = "{\"exit_code\":0}";
  done.report_json = "{\"effects\":[]}";
  done.upper_bytes = 4096;
  ASSERT_TRUE(st.UpdateBranch("b1", done).ok());
  BranchUpdate discard;
  discard.state = "discarded";
  discard.reason = "discarded: abort";
  ASSERT_TRUE(st.UpdateBranch("b1", discard).ok());
  auto got = st.GetBranch("b1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, "discarded");
  EXPECT_EQ(got->result_json, "{\"exit_code\":0}");
  EXPECT_EQ(got->report_json, "{\"effects\":[]}");
  EXPECT_EQ(got->upper_bytes, 4096u);
  EXPECT_EQ(got->reason, "discarded: abort");
  EXPECT_EQ(got->error, "");
  // The old three-argument form still only touches state and result.
  ASSERT_TRUE(st.UpdateBranch("b1", "failed").ok());
  got = st.GetBranch("b1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, "failed");
  EXPECT_EQ(got->reason, "discarded: abort");
  EXPECT_EQ(st.UpdateBranch("b9", discard).error().code(), Code::kNotFound);
  auto list = st.ListBranches("s1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].report_json, "{\"effects\":[]}");
}

// PRAGMA synchronous of a connection: 2 FULL, 1 NORMAL.
int64_t Synchronous(SqliteDb& db) {
  auto q = db.Prepare("PRAGMA synchronous");
  if (!q.ok()) return -1;
  auto row = q->Step();
  return row.ok() && *row ? q->Int(0) : -1;
}

// Relaxed writes (store::Durability) skip the WAL's fsync for their own
// transaction only: the connection is FULL before and after, whatever the
// scope did, and a relaxed row is there like any other (after a reopen too).
TEST_F(StoreTest, ARelaxedBranchWriteIsRelaxedForItselfOnly) {
  {
    auto db = SqliteDb::Open(dir_ + "/scope.db");
    ASSERT_TRUE(db.ok()) << db.error().ToString();
    EXPECT_EQ(Synchronous(*db), 2);
    {
      RelaxedSyncScope relaxed(*db, true);
      EXPECT_EQ(Synchronous(*db), 1);
      ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
    }
    EXPECT_EQ(Synchronous(*db), 2);
    {
      RelaxedSyncScope synced(*db, false);
      EXPECT_EQ(Synchronous(*db), 2);
    }
    EXPECT_EQ(Synchronous(*db), 2);
  }
  {
    auto store = CheckpointStore::Open(dir_, kNoFs);
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    auto& st = **store;
    ASSERT_TRUE(st.PutSession(Session("s1")).ok());
    ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt("c1", "s1", "")).ok());
    ASSERT_TRUE(st.PutBranch(BranchRecord{"b1", "s1", "c1", "make", "starting", "", NowMs(), NowMs()},
                             Durability::kRelaxed)
                    .ok());
    ASSERT_TRUE(st.UpdateBranch("b1", "running", std::nullopt, Durability::kRelaxed).ok());
    EXPECT_EQ(st.UpdateBranch("b9", "running", std::nullopt, Durability::kRelaxed).error().code(), Code::kNotFound);
  }
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto got = (*store)->GetBranch("b1");
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->state, "running");
}

// A database written by a schema-1 build (the version before branch outcomes
// were kept): opening it migrates in place and keeps every row.
TEST_F(StoreTest, MigratesSchemaOneDatabaseAddingBranchOutcomeColumns) {
  {
    auto db = SqliteDb::Open(dir_ + "/specula.db");
    ASSERT_TRUE(db.ok()) << db.error().ToString();
    // Schema version 1 as shipped (checkpoint_store.cpp kMigrations[0]).
    ASSERT_TRUE(db->Exec(R"sql(
CREATE TABLE sessions(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, base TEXT NOT NULL,
  target TEXT NOT NULL CHECK(target IN ('layer','base')),
  policy_text TEXT NOT NULL, policy_path TEXT NOT NULL,
  head TEXT, created INTEGER NOT NULL);
CREATE TABLE layers(
  id TEXT PRIMARY KEY,
  session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  path TEXT NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL,
  squashed_from TEXT NOT NULL DEFAULT '[]');
CREATE TABLE checkpoints(
  id TEXT PRIMARY KEY,
  session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  parent TEXT REFERENCES checkpoints(id) ON DELETE CASCADE,
  command TEXT NOT NULL, created INTEGER NOT NULL,
  layers TEXT NOT NULL, shell_state TEXT NOT NULL,
  has_process_image INTEGER NOT NULL, image_dir TEXT NOT NULL,
  layer_bytes INTEGER NOT NULL, image_bytes INTEGER NOT NULL,
  apply_record TEXT NOT NULL DEFAULT '');
CREATE INDEX checkpoints_by_session ON checkpoints(session);
CREATE TABLE branches(
  id TEXT PRIMARY KEY,
  session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  parent_checkpoint TEXT NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
  command TEXT NOT NULL, state TEXT NOT NULL, result TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE INDEX branches_by_session ON branches(session);
INSERT INTO sessions VALUES('s1','old','/','layer','','','c1',1);
INSERT INTO checkpoints VALUES('c1','s1',NULL,'',1,'[]','cwd=/',0,'',0,0,'');
INSERT INTO branches VALUES('b1','s1','c1','make','discarded','{"exit_code":2}',1,2);
PRAGMA user_version=1;
)sql").ok());
  }
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto& st = **store;
  auto old = st.GetBranch("b1");
  ASSERT_TRUE(old.ok()) << old.error().ToString();
  EXPECT_EQ(old->command, "make");
  EXPECT_EQ(old->state, "discarded");
  EXPECT_EQ(old->result_json, "{\"exit_code\":2}");
  EXPECT_EQ(old->report_json, "");
  EXPECT_EQ(old->error, "");
  EXPECT_EQ(old->upper_bytes, 0u);
  EXPECT_EQ(old->reason, "");
  BranchUpdate u;
  u.reason = "discarded: daemon restart (crash recovery)";
  u.upper_bytes = 12;
  ASSERT_TRUE(st.UpdateBranch("b1", u).ok());
  auto now = st.GetBranch("b1");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->reason, "discarded: daemon restart (crash recovery)");
  EXPECT_EQ(now->upper_bytes, 12u);
  EXPECT_EQ(now->state, "discarded");
  auto s = st.GetSession("s1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->head, "c1");
  {
    auto db = SqliteDb::Open(dir_ + "/specula.db");
    ASSERT_TRUE(db.ok());
    auto q = db->Prepare("PRAGMA user_version");
    ASSERT_TRUE(q.ok());
    auto row = q->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(q->Int(0), CheckpointStore::kSchemaVersion);
  }
}

// A session of more than a thousand commits: every checkpoint is the
// parent of the next, and deleting the session once cascaded down that
// chain one level of SQLite trigger per checkpoint, past its limit of 1000
// ("too many levels of trigger recursion"): the session could never be
// destroyed. Another session's chain and rows stay.
TEST_F(StoreTest, DeletingASessionOfThousandsOfCheckpointsLeavesOtherSessionsAlone) {
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto& st = **store;
  for (const char* s : {"long", "other"}) ASSERT_TRUE(st.PutSession(Session(s)).ok());
  std::string parent;
  for (int i = 0; i < 1500; ++i) {
    std::string id = "c" + std::to_string(i);
    ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt(id, "long", parent)).ok()) << id;
    if (i % 100 == 0) {
      BranchRecord b{"b" + std::to_string(i), "long", id, "make", "discarded", "", NowMs(), NowMs()};
      ASSERT_TRUE(st.PutBranch(b).ok());
    }
    parent = id;
  }
  ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt("o0", "other", "")).ok());
  ASSERT_TRUE(st.PutCheckpointAsHead(Ckpt("o1", "other", "o0")).ok());
  ASSERT_TRUE(st.PutBranch(BranchRecord{"ob", "other", "o1", "ls", "done", "", NowMs(), NowMs()}).ok());

  Status del = st.DeleteSession("long");
  ASSERT_TRUE(del.ok()) << del.ToString();
  EXPECT_EQ(st.GetSession("long").error().code(), Code::kNotFound);
  EXPECT_EQ(st.GetCheckpoint("c0").error().code(), Code::kNotFound);
  EXPECT_EQ(st.GetCheckpoint("c1499").error().code(), Code::kNotFound);
  EXPECT_EQ(st.GetBranch("b100").error().code(), Code::kNotFound);
  auto o1 = st.GetCheckpoint("o1");
  ASSERT_TRUE(o1.ok());
  EXPECT_EQ(o1->parent, "o0");
  EXPECT_TRUE(st.GetBranch("ob").ok());
  EXPECT_EQ(st.GetSession("other")->head, "o1");
  // Reopened (the rows are really gone, the other session's really there).
  store->reset();
  auto again = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->GetCheckpoint("c700").error().code(), Code::kNotFound);
  EXPECT_TRUE((*again)->GetCheckpoint("o0").ok());
}

TEST_F(StoreTest, SealLayerRenamesUpperAndDeleteSessionRemovesIt) {
  auto store = CheckpointStore::Open(dir_, kNoFs);
  ASSERT_TRUE(store.ok());
  auto& st = **store;
  ASSERT_TRUE(st.PutSession(Session("s1")).ok());
  std::string upper = st.BranchDir("b1") + "/upper";
  ASSERT_TRUE(MakeDirs(upper + "/etc").ok());
  std::ofstream(upper + "/etc/motd") << "hello\n";
  auto layer = st.SealLayer("s1", upper);
  ASSERT_TRUE(layer.ok()) << layer.error().ToString();
  EXPECT_EQ(::access(upper.c_str(), F_OK), -1);
  std::ifstream in(layer->path + "/etc/motd");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "hello");
  EXPECT_GT(layer->bytes, 0u);
  auto got = st.GetLayer(layer->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->path, st.LayerPath(layer->id));

  ASSERT_TRUE(st.DeleteSession("s1").ok());
  EXPECT_EQ(::access(layer->path.c_str(), F_OK), -1);
  EXPECT_EQ(st.GetLayer(layer->id).error().code(), Code::kNotFound);
  EXPECT_EQ(st.DeleteSession("s1").error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace specula::store
