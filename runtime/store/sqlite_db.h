// A small RAII wrapper over the sqlite3 C API: one owner for the connection,
// one for each prepared statement, and every failure as an Error carrying
// sqlite's own message. No exceptions, no global state.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace specula::store {

// A prepared statement. Move-only; finalized on destruction.
class SqliteStmt {
 public:
  SqliteStmt() = default;
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  SqliteStmt(SqliteStmt&& o) noexcept;
  SqliteStmt& operator=(SqliteStmt&& o) noexcept;
  ~SqliteStmt();

  // Parameters are 1-based, as in sqlite.
  SqliteStmt& Bind(int idx, std::string_view text);
  SqliteStmt& Bind(int idx, int64_t v);
  SqliteStmt& BindNull(int idx);

  // One step: true when a row is available, false when done.
  Result<bool> Step();
  // Steps to completion (for statements without rows).
  Status Run();

  std::string Text(int col) const;
  int64_t Int(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// A connection. Move-only; closed on destruction.
class SqliteDb {
 public:
  // Opens (creating) the database file, with WAL journaling, foreign keys on,
  // and a busy timeout so concurrent readers from other threads wait.
  static Result<SqliteDb> Open(const std::string& path);

  SqliteDb() = default;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  SqliteDb(SqliteDb&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  SqliteDb& operator=(SqliteDb&& o) noexcept;
  ~SqliteDb();

  Status Exec(const std::string& sql);
  Result<SqliteStmt> Prepare(const std::string& sql);
  sqlite3* raw() const { return db_; }
  int64_t Changes() const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// While it lives (when `relaxed`), the connection's commits are not fsynced
// (synchronous=NORMAL; Open sets FULL): see store::Durability for when that
// is right. FULL again at the end of the scope. Not movable: a scope.
class RelaxedSyncScope {
 public:
  RelaxedSyncScope(SqliteDb& db, bool relaxed);
  RelaxedSyncScope(const RelaxedSyncScope&) = delete;
  RelaxedSyncScope& operator=(const RelaxedSyncScope&) = delete;
  ~RelaxedSyncScope();

 private:
  SqliteDb* db_ = nullptr;  // null: nothing to restore
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless Commit() was called.
class SqliteTxn {
 public:
  static Result<SqliteTxn> Begin(SqliteDb& db);
  SqliteTxn(SqliteTxn&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  SqliteTxn(const SqliteTxn&) = delete;
  SqliteTxn& operator=(const SqliteTxn&) = delete;
  SqliteTxn& operator=(SqliteTxn&&) = delete;
  ~SqliteTxn();
  Status Commit();

 private:
  explicit SqliteTxn(SqliteDb* db) : db_(db) {}
  SqliteDb* db_ = nullptr;
};

}  // namespace specula::store
