// The apply journal: <journal_dir>/journal, a JSON document replaced
// atomically (write journal.tmp, fsync, rename, fsync dir) at every state
// change. Its state decides what Recover() does:
//   staging    -> roll back (remove staged names)   [before the commit point]
//   committed  -> roll forward (finish the renames)  [the commit point]
//   done       -> nothing; Revert() may undo it
//   reverting  -> finish the revert
//   reverted / aborted -> nothing
// Individual renames are not journaled: each op's progress is read back from
// the inode numbers at its three places (target, staging name, pre-image).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/crash_point.h"
#include "common/error.h"
#include "runtime/apply/safe_fs.h"

namespace specula::apply {

// Crash injection: Step() is called right after every durable action of an
// apply, a revert or a recovery (the counted crash point "apply.step").
inline constexpr const char* kCrashPointApplyStep = "apply.step";

enum class JournalState { kStaging, kCommitted, kDone, kAborted, kReverting, kReverted };
const char* ToString(JournalState s);

enum class OpKind {
  kPut,     // staged object renamed onto path (exchange if something is there)
  kDelete,  // path moved into pre/<index> (a whiteout)
  kMeta,    // merged directory: owner/mode/mtime set in place
};

struct MetaRec {
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0;
};

// What the apply left at a path, to detect host changes before a revert.
struct PostRec {
  bool exists = false;
  FileId id;
  uint32_t mode = 0;  // full st_mode
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0, ctime_sec = 0, ctime_nsec = 0;
  static PostRec Of(const struct stat& st);
  bool operator==(const PostRec&) const = default;
};

struct JournalOp {
  OpKind kind = OpKind::kPut;
  std::string path;   // relative to the base
  std::string stage;  // kPut: staging name in the target's parent directory
  FileId staged;      // kPut: the staged object (set once staged)
  MetaRec old_meta, new_meta;  // kMeta
  PostRec post;       // set when the apply is done
  // kPut of a directory: what every entry below it held when the apply was
  // done (path relative to op.path), so Revert also notices host changes inside.
  std::vector<std::pair<std::string, PostRec>> subtree_post;
};

// Version 2 writes paths escaped (journal.cpp: EscapeName): a name is
// bytes, a JSON string UTF-8. Version 1 journals (paths raw) still read.
inline constexpr int kJournalVersion = 2;

struct Journal {
  int version = kJournalVersion;
  std::string id;
  JournalState state = JournalState::kStaging;
  FileId base;  // the base directory this journal belongs to
  std::vector<JournalOp> ops;
};

// Pre-image / trash slot name of op i.
inline std::string SlotName(size_t i) { return std::to_string(i); }

inline constexpr const char* kJournalFile = "journal";
inline constexpr const char* kPreDir = "pre";
inline constexpr const char* kTrashDir = "trash";

Status WriteJournal(int journal_dir_fd, const Journal& j, CrashCounter* steps);
// nullopt when there is no journal file.
Result<std::optional<Journal>> ReadJournal(int journal_dir_fd);

}  // namespace specula::apply
