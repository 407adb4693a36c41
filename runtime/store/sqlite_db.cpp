#include "runtime/store/sqlite_db.h"

#include <spdlog/spdlog.h>
#include <utility>

namespace specula::store {
namespace {

Error SqlError(sqlite3* db, std::string_view what) {
  int rc = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "no database");
  Code code = Code::kInternal;
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: code = Code::kAlreadyExists; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = Code::kDataLoss; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = Code::kUnavailable; break;
    case SQLITE_FULL: code = Code::kResourceExhausted; break;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY: code = Code::kPermissionDenied; break;
    default: break;
  }
  // A foreign-key failure is a reference to something missing, not a duplicate.
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) code = Code::kNotFound;
  return Error(code, std::move(msg));
}

}  // namespace

SqliteStmt::SqliteStmt(SqliteStmt&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)), stmt_(std::exchange(o.stmt_, nullptr)) {}

SqliteStmt& SqliteStmt::operator=(SqliteStmt&& o) noexcept {
  if (this != &o) {
    if (stmt_) sqlite3_finalize(stmt_);
    db_ = std::exchange(o.db_, nullptr);
    stmt_ = std::exchange(o.stmt_, nullptr);
  }
  return *this;
}

SqliteStmt::~SqliteStmt() {
  if (stmt_) sqlite3_finalize(stmt_);
}

SqliteStmt& SqliteStmt::Bind(int idx, std::string_view text) {
  sqlite3_bind_text(stmt_, idx, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStmt& SqliteStmt::Bind(int idx, int64_t v) {
  sqlite3_bind_int64(stmt_, idx, v);
  return *this;
}

SqliteStmt& SqliteStmt::BindNull(int idx) {
  sqlite3_bind_null(stmt_, idx);
  return *this;
}

Result<bool> SqliteStmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(db_, std::string("sqlite step: ") + sqlite3_sql(stmt_));
}

Status SqliteStmt::Run() {
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::Ok();
  }
}

std::string SqliteStmt::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(n)) : std::string();
}

int64_t SqliteStmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

bool SqliteStmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

Result<SqliteDb> SqliteDb::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  SqliteDb db(raw);  // owns raw even on failure (sqlite allocates a handle anyway)
  if (rc != SQLITE_OK) return SqlError(raw, "open " + path);
  sqlite3_busy_timeout(raw, 5000);
  SPECULA_TRY_CTX(db.Exec("PRAGMA journal_mode=WAL"), "open " + path);
  SPECULA_TRY_CTX(db.Exec("PRAGMA foreign_keys=ON"), "open " + path);
  // WAL + NORMAL is durable against process crashes; FULL also against power
  // loss at each commit, which is what "durable once commit returns" asks.
  SPECULA_TRY_CTX(db.Exec("PRAGMA synchronous=FULL"), "open " + path);
  return db;
}

SqliteDb& SqliteDb::operator=(SqliteDb&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(o.db_, nullptr);
  }
  return *this;
}

SqliteDb::~SqliteDb() {
  if (db_) sqlite3_close_v2(db_);
}

Status SqliteDb::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    Error e = SqlError(db_, "sqlite exec");
    return Error(e.code(), "sqlite exec: " + msg);
  }
  return Status::Ok();
}

Result<SqliteStmt> SqliteDb::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return SqlError(db_, "sqlite prepare: " + sql);
  }
  return SqliteStmt(db_, stmt);
}

int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

Result<SqliteTxn> SqliteTxn::Begin(SqliteDb& db) {
  SPECULA_TRY(db.Exec("BEGIN IMMEDIATE"));
  return SqliteTxn(&db);
}

SqliteTxn::~SqliteTxn() {
  if (db_) (void)db_->Exec("ROLLBACK");
}

Status SqliteTxn::Commit() {
  SPECULA_TRY(db_->Exec("COMMIT"));
  db_ = nullptr;
  return Status::Ok();
}

RelaxedSyncScope::RelaxedSyncScope(SqliteDb& db, bool relaxed) {
  if (!relaxed) return;
  // A failed PRAGMA leaves FULL on: slower, never less durable.
  if (db.Exec("PRAGMA synchronous=NORMAL").ok()) db_ = &db;
}

RelaxedSyncScope::~RelaxedSyncScope() {
  if (db_ == nullptr) return;
  if (Status st = db_->Exec("PRAGMA synchronous=FULL"); !st.ok()) {
    spdlog::error("sqlite: synchronous=FULL not restored: {}", st.ToString());
  }
}

}  // namespace specula::store
