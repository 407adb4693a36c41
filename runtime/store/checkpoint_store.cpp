#include "runtime/store/checkpoint_store.h"

#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "common/time.h"

namespace specula::store {
namespace {

// Migration i brings the schema from version i to i+1. Never edit a shipped
// entry: append a new one.
constexpr const char* kMigrations[] = {
    R"sql(
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
)sql",
    // 1 -> 2: what a branch did outlives it (branch.show of finished branches).
    R"sql(
ALTER TABLE branches ADD COLUMN report TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN error TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN upper_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE branches ADD COLUMN reason TEXT NOT NULL DEFAULT '';
)sql",
    // 2 -> 3: no schema change; layer roots of older builds are repaired
    // first (FixLegacyLayerRootsLocked).
    "SELECT 1;",
    // 3 -> 4: why a branch was launched (transparent speculation: source,
    // candidate confidence), as JSON; "" for a client's action.speculate.
    "ALTER TABLE branches ADD COLUMN origin TEXT NOT NULL DEFAULT '';",
    // 4 -> 5: the columns the foreign keys' ON DELETE actions look up. Without
    // them every deleted checkpoint scanned both tables for its children.
    R"sql(
CREATE INDEX IF NOT EXISTS checkpoints_by_parent ON checkpoints(parent);
CREATE INDEX IF NOT EXISTS branches_by_parent ON branches(parent_checkpoint);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == CheckpointStore::kSchemaVersion);

std::string ToJsonList(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

Result<std::vector<std::string>> FromJsonList(const std::string& text, const std::string& what) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return Error(Code::kDataLoss, what + ": not a JSON list");
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) return Error(Code::kDataLoss, what + ": not a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

constexpr const char* kSessionCols = "id,name,base,target,policy_text,policy_path,head,created";
constexpr const char* kCheckpointCols =
    "id,session,parent,command,created,layers,shell_state,has_process_image,image_dir,"
    "layer_bytes,image_bytes,apply_record";
constexpr const char* kBranchCols =
    "id,session,parent_checkpoint,command,state,result,created,updated,report,error,upper_bytes,reason,origin";

SessionRecord ReadSession(const SqliteStmt& s) {
  return SessionRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3),
                       s.Text(4), s.Text(5), s.Text(6), s.Int(7)};
}

Result<CheckpointRecord> ReadCheckpoint(const SqliteStmt& s) {
  CheckpointRecord c;
  c.id = s.Text(0);
  c.session = s.Text(1);
  c.parent = s.Text(2);
  c.command = s.Text(3);
  c.created_ms = s.Int(4);
  SPECULA_ASSIGN_OR_RETURN(c.layers, FromJsonList(s.Text(5), "checkpoint " + c.id + " layers"));
  c.shell_state = s.Text(6);
  c.has_process_image = s.Int(7) != 0;
  c.image_dir = s.Text(8);
  c.layer_bytes = static_cast<uint64_t>(s.Int(9));
  c.image_bytes = static_cast<uint64_t>(s.Int(10));
  c.apply_record = s.Text(11);
  return c;
}

BranchRecord ReadBranch(const SqliteStmt& s) {
  BranchRecord b{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Text(5), s.Int(6), s.Int(7)};
  b.report_json = s.Text(8);
  b.error = s.Text(9);
  b.upper_bytes = static_cast<uint64_t>(s.Int(10));
  b.reason = s.Text(11);
  b.origin_json = s.Text(12);
  return b;
}

}  // namespace

Result<std::string> NewId(char prefix) {
  unsigned char raw[5];
  size_t got = 0;
  while (got < sizeof(raw)) {
    ssize_t n = ::getrandom(raw + got, sizeof(raw) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("getrandom");
    }
    got += static_cast<size_t>(n);
  }
  uint64_t bits = 0;
  for (unsigned char b : raw) bits = (bits << 8) | b;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id(1, prefix);
  for (int shift = 35; shift >= 0; shift -= 5) id += kAlphabet[(bits >> shift) & 31];
  return id;
}

Result<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(const std::string& state_dir,
                                                               const StoreOptions& opts) {
  if (state_dir.empty() || state_dir[0] != '/') {
    return Error(Code::kInvalidArgument, "state dir must be an absolute path: '" + state_dir + "'");
  }
  for (const char* sub : {"", "/images", "/journal"}) {
    SPECULA_TRY_CTX(MakeDirs(state_dir + sub, 0700), "open store");
  }
  SPECULA_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(state_dir + "/specula.db"));
  std::unique_ptr<CheckpointStore> store(new CheckpointStore(state_dir, std::move(db)));
  if (opts.dedicated_fs) SPECULA_TRY_CTX(store->MountLayerFs(opts), "open store " + state_dir);
  for (const char* sub : {"/layers", "/branches"}) {
    SPECULA_TRY_CTX(MakeDirs(store->fs_dir_ + sub, 0700), "open store");
  }
  SPECULA_TRY_CTX(store->Migrate(), "open store " + state_dir);
  return store;
}

CheckpointStore::~CheckpointStore() {
  if (mounted_fs_ && ::umount2(fs_dir_.c_str(), MNT_DETACH) != 0) {
    // Still in use (a live sandbox elsewhere): the next Open reuses it.
  }
}

Status CheckpointStore::Migrate() {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare("PRAGMA user_version"));
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  int version = row ? static_cast<int>(q.Int(0)) : 0;
  if (version > kSchemaVersion) {
    return Error(Code::kFailedPrecondition,
                 "database schema version " + std::to_string(version) + " is newer than this build's " +
                     std::to_string(kSchemaVersion))
        .WithHint("run a newer speculad, or use another --state-dir");
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    // Before the version moves: a crash in between redoes it (idempotent).
    if (v == 2) SPECULA_TRY_CTX(FixLegacyLayerRootsLocked(), "migrate to 3");
    SPECULA_ASSIGN_OR_RETURN(auto txn, SqliteTxn::Begin(db_));
    SPECULA_TRY_CTX(db_.Exec(kMigrations[v]), "migrate to " + std::to_string(v + 1));
    SPECULA_TRY(db_.Exec("PRAGMA user_version=" + std::to_string(v + 1)));
    SPECULA_TRY(txn.Commit());
  }
  return Status::Ok();
}

Status CheckpointStore::FixLegacyLayerRootsLocked() {
  // Builds before schema 3 made every upper dir 0700 root:root, and a
  // layer's root is its former upper's: through an overlay `/` was 0700 and
  // no other user could run anything (issue 16). Such roots take their
  // session base's root attributes, as a new build's uppers do. Another
  // mode was set by an action (`chmod 755 /`) and stays.
  SPECULA_ASSIGN_OR_RETURN(
      auto q, db_.Prepare("SELECT layers.path, sessions.base FROM layers JOIN sessions ON layers.session = sessions.id"));
  size_t fixed = 0;
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    std::string path = q.Text(0), base = q.Text(1);
    struct stat st {}, b {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0700 || st.st_uid != 0 ||
        st.st_gid != 0 || ::stat(base.c_str(), &b) != 0) {
      continue;
    }
    if (::chown(path.c_str(), b.st_uid, b.st_gid) != 0 || ::chmod(path.c_str(), b.st_mode & 07777) != 0) {
      return Error::FromErrno("repair the root of layer " + path);
    }
    ++fixed;
  }
  if (fixed > 0) spdlog::info("store {}: {} layer root(s) of an older build now carry their base's mode", dir_, fixed);
  return Status::Ok();
}

std::string CheckpointStore::LayerPath(const std::string& id) const { return fs_dir_ + "/layers/" + id + "/fs"; }
std::string CheckpointStore::ImageDir(const std::string& id) const { return dir_ + "/images/" + id; }
std::string CheckpointStore::BranchDir(const std::string& id) const { return fs_dir_ + "/branches/" + id; }
std::string CheckpointStore::JournalDir() const { return dir_ + "/journal"; }

Status CheckpointStore::PutSession(const SessionRecord& s) {
  if (s.target != "layer" && s.target != "base") {
    return Error(Code::kInvalidArgument, "session target must be 'layer' or 'base', not '" + s.target + "'");
  }
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("INSERT INTO sessions(") + kSessionCols +
                                               ") VALUES(?,?,?,?,?,?,?,?)"));
  q.Bind(1, s.id).Bind(2, s.name).Bind(3, s.base).Bind(4, s.target).Bind(5, s.policy_text);
  q.Bind(6, s.policy_path).Bind(7, s.head).Bind(8, s.created_ms);
  return q.Run().Context("put session " + s.id);
}

Result<SessionRecord> CheckpointStore::GetSession(const std::string& id) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kSessionCols +
                                               " FROM sessions WHERE id=?"));
  q.Bind(1, id);
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(Code::kNotFound, "no session " + id);
  return ReadSession(q);
}

Result<std::vector<SessionRecord>> CheckpointStore::ListSessions() {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kSessionCols +
                                               " FROM sessions ORDER BY created, id"));
  std::vector<SessionRecord> out;
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadSession(q));
  }
  return out;
}

Status CheckpointStore::SetHead(const std::string& session, const std::string& checkpoint) {
  std::lock_guard lock(mu_);
  // The head must be a checkpoint of this very session.
  SPECULA_ASSIGN_OR_RETURN(
      auto q, db_.Prepare("UPDATE sessions SET head=?1 WHERE id=?2 AND EXISTS "
                          "(SELECT 1 FROM checkpoints WHERE id=?1 AND session=?2)"));
  q.Bind(1, checkpoint).Bind(2, session);
  SPECULA_TRY(q.Run());
  if (db_.Changes() != 1) {
    return Error(Code::kNotFound, "set head of " + session + ": no checkpoint " + checkpoint + " in it");
  }
  return Status::Ok();
}

Status CheckpointStore::DeleteSession(const std::string& id) {
  std::vector<std::string> dirs;
  {
    std::lock_guard lock(mu_);
    SPECULA_ASSIGN_OR_RETURN(auto ql, db_.Prepare("SELECT id FROM layers WHERE session=?"));
    ql.Bind(1, id);
    for (;;) {
      SPECULA_ASSIGN_OR_RETURN(bool row, ql.Step());
      if (!row) break;
      dirs.push_back(fs_dir_ + "/layers/" + ql.Text(0));
    }
    SPECULA_ASSIGN_OR_RETURN(auto qc, db_.Prepare("SELECT id FROM checkpoints WHERE session=?"));
    qc.Bind(1, id);
    for (;;) {
      SPECULA_ASSIGN_OR_RETURN(bool row, qc.Step());
      if (!row) break;
      dirs.push_back(ImageDir(qc.Text(0)));
      // Apply journals of promotes to the base: the host keeps the applied
      // files; their pre-images only served this session's rollback. Named
      // "<session>.<checkpoint>" (older stores: "<checkpoint>").
      dirs.push_back(JournalDir() + "/" + id + "." + qc.Text(0));
      dirs.push_back(JournalDir() + "/" + qc.Text(0));
    }
    SPECULA_ASSIGN_OR_RETURN(auto qb, db_.Prepare("SELECT id FROM branches WHERE session=?"));
    qb.Bind(1, id);
    for (;;) {
      SPECULA_ASSIGN_OR_RETURN(bool row, qb.Step());
      if (!row) break;
      dirs.push_back(BranchDir(qb.Text(0)));
    }
    // Rows first: a crash after this leaves only unreferenced directories,
    // never rows pointing at missing files. One transaction, and flat: left
    // to the foreign keys, deleting the session cascades down the chain of
    // checkpoints (each the parent of the next), one level of SQLite trigger
    // per checkpoint, and a session of over 1000 commits fails with "too
    // many levels of trigger recursion". Its branches and the parent links
    // go first, so the checkpoints' own delete cascades nowhere.
    SPECULA_ASSIGN_OR_RETURN(auto txn, SqliteTxn::Begin(db_));
    for (const char* sql : {"DELETE FROM branches WHERE session=?",
                            "UPDATE checkpoints SET parent=NULL WHERE session=? AND parent IS NOT NULL",
                            "DELETE FROM checkpoints WHERE session=?", "DELETE FROM layers WHERE session=?"}) {
      SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(sql));
      q.Bind(1, id);
      SPECULA_TRY_CTX(q.Run(), "delete session " + id);
    }
    SPECULA_ASSIGN_OR_RETURN(auto qd, db_.Prepare("DELETE FROM sessions WHERE id=?"));
    qd.Bind(1, id);
    SPECULA_TRY_CTX(qd.Run(), "delete session " + id);
    if (db_.Changes() != 1) return Error(Code::kNotFound, "no session " + id);
    SPECULA_TRY_CTX(txn.Commit(), "delete session " + id);
  }
  for (const auto& d : dirs) SPECULA_TRY_CTX(RemoveTree(d), "delete session " + id);
  // Deleted subvolumes are freed by the kernel's cleaner, and their blocks
  // discarded from the image after that: start it now, not at the next
  // periodic commit (up to 30 s away).
  if (btrfs_) {
    if (Status st = btrfs_->Sync(); !st.ok()) spdlog::warn("delete session {}: {}", id, st.ToString());
  }
  return Status::Ok();
}

Status CheckpointStore::InsertCheckpointLocked(const CheckpointRecord& c) {
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("INSERT INTO checkpoints(") + kCheckpointCols +
                                               ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"));
  q.Bind(1, c.id).Bind(2, c.session);
  if (c.parent.empty()) q.BindNull(3);
  else q.Bind(3, c.parent);
  q.Bind(4, c.command).Bind(5, c.created_ms).Bind(6, ToJsonList(c.layers)).Bind(7, c.shell_state);
  q.Bind(8, int64_t{c.has_process_image}).Bind(9, c.image_dir);
  q.Bind(10, static_cast<int64_t>(c.layer_bytes)).Bind(11, static_cast<int64_t>(c.image_bytes));
  q.Bind(12, c.apply_record);
  return q.Run().Context("put checkpoint " + c.id);
}

Status CheckpointStore::PutCheckpoint(const CheckpointRecord& c) {
  std::lock_guard lock(mu_);
  return InsertCheckpointLocked(c);
}

Status CheckpointStore::PutCheckpointAsHead(const CheckpointRecord& c) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto txn, SqliteTxn::Begin(db_));
  SPECULA_TRY(InsertCheckpointLocked(c));
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare("UPDATE sessions SET head=? WHERE id=?"));
  q.Bind(1, c.id).Bind(2, c.session);
  SPECULA_TRY(q.Run());
  if (db_.Changes() != 1) return Error(Code::kNotFound, "no session " + c.session);
  return txn.Commit();
}

Result<CheckpointRecord> CheckpointStore::GetCheckpoint(const std::string& id) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kCheckpointCols +
                                               " FROM checkpoints WHERE id=?"));
  q.Bind(1, id);
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(Code::kNotFound, "no checkpoint " + id);
  return ReadCheckpoint(q);
}

Result<std::vector<CheckpointRecord>> CheckpointStore::ListCheckpoints(const std::string& session) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kCheckpointCols +
                                               " FROM checkpoints WHERE session=? ORDER BY created, rowid"));
  q.Bind(1, session);
  std::vector<CheckpointRecord> out;
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    SPECULA_ASSIGN_OR_RETURN(auto c, ReadCheckpoint(q));
    out.push_back(std::move(c));
  }
  return out;
}

Result<LayerRecord> CheckpointStore::RecordLayer(LayerRecord l) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare("INSERT INTO layers(id,session,path,bytes,created,squashed_from)"
                                               " VALUES(?,?,?,?,?,?)"));
  q.Bind(1, l.id).Bind(2, l.session).Bind(3, l.path).Bind(4, static_cast<int64_t>(l.bytes));
  q.Bind(5, l.created_ms).Bind(6, ToJsonList(l.squashed_from));
  SPECULA_TRY_CTX(q.Run(), "seal layer " + l.id);
  return l;
}

Result<LayerRecord> CheckpointStore::GetLayer(const std::string& id) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(
      auto q, db_.Prepare("SELECT id,session,path,bytes,created,squashed_from FROM layers WHERE id=?"));
  q.Bind(1, id);
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(Code::kNotFound, "no layer " + id);
  LayerRecord l{q.Text(0), q.Text(1), q.Text(2), static_cast<uint64_t>(q.Int(3)), q.Int(4), {}};
  SPECULA_ASSIGN_OR_RETURN(l.squashed_from, FromJsonList(q.Text(5), "layer " + id));
  return l;
}

Status CheckpointStore::PutBranch(const BranchRecord& b, Durability d) {
  std::lock_guard lock(mu_);
  RelaxedSyncScope relaxed(db_, d == Durability::kRelaxed);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("INSERT INTO branches(") + kBranchCols +
                                               ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  q.Bind(1, b.id).Bind(2, b.session).Bind(3, b.parent_checkpoint).Bind(4, b.command);
  q.Bind(5, b.state).Bind(6, b.result_json).Bind(7, b.created_ms).Bind(8, b.updated_ms);
  q.Bind(9, b.report_json).Bind(10, b.error).Bind(11, static_cast<int64_t>(b.upper_bytes)).Bind(12, b.reason);
  q.Bind(13, b.origin_json);
  return q.Run().Context("put branch " + b.id);
}

Status CheckpointStore::UpdateBranch(const std::string& id, const std::string& state,
                                     const std::optional<std::string>& result_json, Durability d) {
  BranchUpdate u;
  u.state = state;
  u.result_json = result_json;
  u.durability = d;
  return UpdateBranch(id, u);
}

Status CheckpointStore::UpdateBranch(const std::string& id, const BranchUpdate& u) {
  std::lock_guard lock(mu_);
  RelaxedSyncScope relaxed(db_, u.durability == Durability::kRelaxed);
  // NULL keeps the stored value: one statement serves every partial update.
  SPECULA_ASSIGN_OR_RETURN(
      auto q, db_.Prepare("UPDATE branches SET updated=?1, state=COALESCE(?2, state), result=COALESCE(?3, result),"
                          " report=COALESCE(?4, report), error=COALESCE(?5, error),"
                          " upper_bytes=COALESCE(?6, upper_bytes), reason=COALESCE(?7, reason) WHERE id=?8"));
  q.Bind(1, NowMs());
  auto text = [&q](int idx, const std::optional<std::string>& v) {
    if (v) q.Bind(idx, *v);
    else q.BindNull(idx);
  };
  text(2, u.state);
  text(3, u.result_json);
  text(4, u.report_json);
  text(5, u.error);
  if (u.upper_bytes) q.Bind(6, static_cast<int64_t>(*u.upper_bytes));
  else q.BindNull(6);
  text(7, u.reason);
  q.Bind(8, id);
  SPECULA_TRY(q.Run().Context("update branch " + id));
  if (db_.Changes() != 1) return Error(Code::kNotFound, "no branch " + id);
  return Status::Ok();
}

Result<BranchRecord> CheckpointStore::GetBranch(const std::string& id) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kBranchCols +
                                               " FROM branches WHERE id=?"));
  q.Bind(1, id);
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(Code::kNotFound, "no branch " + id);
  return ReadBranch(q);
}

Result<std::vector<BranchRecord>> CheckpointStore::ListBranches(const std::string& session) {
  std::lock_guard lock(mu_);
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare(std::string("SELECT ") + kBranchCols +
                                               " FROM branches WHERE session=? ORDER BY created, rowid"));
  q.Bind(1, session);
  std::vector<BranchRecord> out;
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadBranch(q));
  }
  return out;
}

}  // namespace specula::store
