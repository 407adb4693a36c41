// Promote to target `base`: apply a branch's overlayfs upper directory onto
// the base directory, crash-safely, keeping pre-images for rollback.
// Protocol and guarantees: docs/promote.md.
//
// The upper directory is UNTRUSTED (the branch's processes wrote it): it is
// walked with O_NOFOLLOW/AT_SYMLINK_NOFOLLOW only and fully validated before
// anything is written. Every base path is resolved with openat2
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) so neither
// the branch nor a concurrent host change can redirect a write outside the
// base. New content is staged next to its target, journaled, then renamed
// into place (RENAME_EXCHANGE / RENAME_NOREPLACE); the replaced originals are
// moved into <journal_dir>/pre/ as pre-images.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"

namespace specula::apply {

// How deep directories may nest in an upper that is promoted to the base or
// diffed (an entry of the upper's root is at depth 1). The branch controls
// the upper's shape completely; a deeper tree is refused with
// kInvalidArgument before anything is written, so every walk of the
// validated tree afterwards is bounded by it. Real trees stay far below
// (PATH_MAX alone allows about 2,000 one-letter levels).
inline constexpr int kMaxUpperDepth = 1024;

struct ApplyOptions {
  policy::Promotion promotion;  // allow_setuid / allow_file_caps / allow_xattrs / allow_devices
  // Where the journal and pre-images live. Must not exist yet (its parent
  // must) or be an empty directory, and must be on the same filesystem as
  // the base paths touched (pre-images are moved, not copied).
  std::string journal_dir;
  bool allow_fifos_and_sockets = false;
  // Rejected entries (device nodes, fifos, ...) are skipped and listed in the
  // report; with this set the whole apply fails instead, before any write.
  bool fail_on_rejected = false;
  // How staged data is made durable before the commit point. kPerFile:
  // fsync every staged file and directory. kSyncFs: one syncfs(2) of the
  // base filesystem (the journal is on it too) - much cheaper for many files,
  // but it also flushes unrelated dirty data of that filesystem. kAuto:
  // kSyncFs above 64 staged objects.
  enum class Sync { kAuto, kPerFile, kSyncFs };
  Sync sync = Sync::kAuto;
  // Crash injection for tests: _exit(99) right at step N (1-based). 0 reads
  // SPECULA_CRASH_AT=apply.step:N (common/crash_point.h); negative never crashes.
  int crash_at = 0;
  // Test hook, run after validation and before the first write (TOCTOU tests).
  std::function<void()> after_validate;
};

struct PathNote {
  std::string path;    // relative to the upper/base root
  std::string detail;  // what was stripped / why it was rejected
};

struct ApplyReport {
  std::string journal_id;
  uint64_t added = 0;    // paths that did not exist in the base
  uint64_t changed = 0;  // paths replaced in the base (pre-image kept)
  uint64_t deleted = 0;  // whiteouts that removed a base path (pre-image kept)
  uint64_t dirs_updated = 0;  // merged directories whose owner/mode/mtime were set
  uint64_t bytes = 0;         // regular-file bytes copied
  uint64_t steps = 0;         // crash points passed (for the crash-injection test)
  std::vector<PathNote> stripped;  // setuid bits, file caps, foreign xattrs removed
  std::vector<PathNote> rejected;  // entries not applied
};

// Applies `upper_dir` onto `base_dir`. On an error before the commit point
// the base is untouched and the journal is marked aborted; on an error after
// it, the journal stays committed and Recover() finishes the apply.
Result<ApplyReport> ApplyUpper(const std::string& upper_dir, const std::string& base_dir,
                               const ApplyOptions& opts);

struct RevertOptions {
  int crash_at = 0;  // as ApplyOptions::crash_at
};

// Undoes a completed apply from its pre-images. Refuses with
// kFailedPrecondition, changing nothing, if any path the apply wrote changed
// since (inode, type, mode, owner, size, mtime, ctime differ), or a deleted
// path was re-created. Journaled: a crash mid-way is finished by Recover().
Status Revert(const std::string& journal_dir, const std::string& base_dir,
              const RevertOptions& opts = {});

enum class RecoveryAction {
  kNothing,          // no journal, or the apply/revert had completed
  kRolledBack,       // the apply had not reached its commit point: staged files removed
  kRolledForward,    // the apply was committed: finished
  kRevertFinished,   // a revert was under way: finished
};
const char* ToString(RecoveryAction a);

struct RecoveryReport {
  RecoveryAction action = RecoveryAction::kNothing;
  std::string state_found;  // journal state before recovery ("none" if no journal)
  uint64_t ops = 0;
};

struct RecoverOptions {
  int crash_at = 0;  // as ApplyOptions::crash_at (tests crash recovery itself)
};

// Brings an interrupted apply or revert to a consistent end. Idempotent: a
// crash during recovery is recovered by running it again.
Result<RecoveryReport> Recover(const std::string& journal_dir, const std::string& base_dir,
                               const RecoverOptions& opts = {});

// Deletes the pre-images of a completed (or reverted/aborted) apply: the
// promote can no longer be reverted. Refuses while an apply is in flight.
Status DiscardJournal(const std::string& journal_dir);

// --- specula diff -------------------------------------------------------

enum class DiffKind { kAdded, kChanged, kDeleted };
const char* ToString(DiffKind k);

struct DiffEntry {
  std::string path;          // relative, no leading slash
  DiffKind kind = DiffKind::kAdded;
  char type = 'f';           // f file, d dir, l symlink, s special
  bool content_changed = true;  // false: only metadata (mode/owner/time) differs
  std::string unified_diff;  // `diff -u` text for small text files, else empty
};

struct UpperDiff {
  std::vector<DiffEntry> entries;  // sorted by path
};

struct DiffOptions {
  bool unified = true;                 // produce unified diffs of text files
  uint64_t max_text_bytes = 256 * 1024;  // larger files get no text diff
};

// Lists what an upper changes relative to its lower layers (topmost first;
// layers may hold whiteouts and opaque dirs themselves).
Result<UpperDiff> DiffUpper(const std::string& upper_dir, const std::vector<std::string>& lower_dirs,
                            const DiffOptions& opts = {});

}  // namespace specula::apply
