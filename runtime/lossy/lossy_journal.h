// Lossy paths, runtime side (DESIGN.md "lossy path / lossy effect"). A
// policy may let a branch write some host paths directly (sysctl knobs, a
// cache directory): those paths are bind-mounted read-write into the branch,
// so the writes escape the sandbox. This class makes that accountable:
//
//   before the branch starts  Prepare(): resolves each lossy path on the host
//                             without following symlinks, expands globs,
//                             captures the pre-image of `restore` entries into
//                             the branch's state dir, and yields the binds.
//   after the action          CollectEffects(): compares each path with its
//                             state at Prepare and journals every change
//                             (these become the commit's `lossy_effects`).
//   on discard                Restore(): writes `restore` entries back (for a
//                             /proc/sys knob: writes the old value) and
//                             journals that it did.
//
// Records are kept in memory and appended to <state_dir>/lossy/journal.jsonl;
// <state_dir>/lossy/manifest.json and the pre-image files let Load() rebuild
// the journal after a daemon restart, so a discard can still restore.
//
// Limits, by design: detection is by comparison (content, mode, size,
// mtime), so a write that leaves the same content is not journaled, and a
// file the journal cannot read (a write-only knob) is never compared.
//
// Siblings (branches of one head) share the host's lossy paths, so each
// one's pre-image is what the previous one left. The caller keeps that a
// stack: a session whose policy has lossy paths runs one branch at a time
// (else one could capture another's half-done `>` write, an empty file, as
// its pre-image), discards restore newest Prepare first (prepared_unix_ns()),
// and a promoted branch's siblings restore to its state (Restore(committed)).
// Two sessions writing one lossy path at once remain the operator's to avoid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "policies/policy.h"
#include "sandbox/sandbox.h"

namespace specula::lossy {

struct LossyOptions {
  // Lossy paths are resolved beneath this directory: "/" for the real host,
  // or a base root filesystem directory.
  std::string host_root = "/";
  uint64_t max_file_bytes = 1ULL << 20;    // largest pre-image of one file
  uint64_t max_total_bytes = 16ULL << 20;  // all pre-images of one branch
  size_t max_files_per_dir = 4096;         // files captured below one lossy directory
};

// One journaled event.
struct LossyRecord {
  enum class Kind {
    kWrite,          // an existing file's content or mode changed
    kCreate,         // a file or directory appeared below a lossy directory
    kDelete,         // a file or directory disappeared
    kRestore,        // Restore() wrote the pre-image back (or removed a created file)
    kRestoreFailed,  // Restore() could not; `detail` says why
    kSkipped,        // Prepare() skipped a lossy path missing on the host
  };
  Kind kind = Kind::kWrite;
  std::string path;  // the affected path, as seen by the branch (absolute)
  std::string rule;  // the policy's lossy path that covers it (may be a directory or glob)
  std::string tag;
  policy::Compensation compensation = policy::Compensation::kRestore;
  int64_t time_unix_ms = 0;
  std::string pre_image;  // file in the state dir holding the old content ("" if none)
  std::string detail;     // "60 -> 10" for short text, "mode 644 -> 600", or an error

  nlohmann::json ToJson() const;
  // The inverse of ToJson (a branch's report keeps its records as JSON);
  // kDataLoss when `j` is not such a record.
  static Result<LossyRecord> FromJson(const nlohmann::json& j);
};

const char* ToString(LossyRecord::Kind kind);

class LossyJournal {
 public:
  // Resolves and captures the lossy paths of `policy` for one branch.
  // `state_dir` must exist; the journal writes below <state_dir>/lossy/.
  // Fails (and captures nothing) if a lossy path traverses a symlink, or a
  // `restore` pre-image would exceed the caps.
  static Result<LossyJournal> Prepare(const policy::Policy& policy, const std::string& state_dir,
                                      LossyOptions options = {});
  // Rebuilds a journal from the manifest and pre-images Prepare() wrote.
  static Result<LossyJournal> Load(const std::string& state_dir, LossyOptions options = {});

  LossyJournal(LossyJournal&&) = default;
  LossyJournal& operator=(LossyJournal&&) = default;
  LossyJournal(const LossyJournal&) = delete;
  LossyJournal& operator=(const LossyJournal&) = delete;

  // Read-write binds for the sandbox (SandboxSpec::binds), one per resolved path.
  const std::vector<sandbox::BindMount>& binds() const { return binds_; }

  // After the action: the changes since Prepare(), journaled. Calling it
  // again reports only changes not reported before.
  Result<std::vector<LossyRecord>> CollectEffects();

  struct CommittedImage;
  // What a promoted branch left on its lossy paths, by absolute path
  // (changed paths only): see Committed().
  using CommittedState = std::map<std::string, CommittedImage>;

  // On discard: restores every `restore` entry to its pre-image (entries
  // with compensation `none` are left as they are). Returns the records of
  // what it did; if anything could not be restored, an Error naming it (the
  // kRestoreFailed records are in records() all the same). Idempotent.
  //
  // `committed`: the state a sibling promoted meanwhile left (its
  // Committed()). Branches of one head run at once and see each other's
  // lossy writes; a discarded sibling's pre-images predate the promoted
  // branch's writes, so putting them back would undo a committed effect
  // (seen in the soak: every hit lost its lossy write to its siblings'
  // discards). Paths in it are put back to the committed state instead.
  Result<std::vector<LossyRecord>> Restore(const CommittedState* committed = nullptr);

  // When Prepare() captured the pre-images (CLOCK_REALTIME, kept in the
  // manifest): journals sharing a path are undone in the reverse order.
  int64_t prepared_unix_ns() const { return prepared_unix_ns_; }

  // Everything journaled so far, oldest first.
  const std::vector<LossyRecord>& records() const { return records_; }
  // {"entries":[{rule,path,tag,compensation,directory}],"records":[...]}
  nlohmann::json ToJson() const;

  // One resolved lossy path and what it held when the branch started.
  struct FileImage {
    std::string rel;  // below the entry ("" for the entry itself)
    bool is_dir = false;
    uint32_t mode = 0, uid = 0, gid = 0;
    bool captured = false;    // `content` holds the whole file
    bool unreadable = false;  // could not be read (e.g. a write-only knob)
    std::string content;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::string pre_image;  // relative to the state dir; restore entries only
    // On procfs/sysfs/debugfs/tracefs: the value does not survive a reboot,
    // so neither need its pre-image (no fsync: Prepare stays fast).
    bool kernel_fs = false;
  };
  struct Entry {
    std::string rule;  // the policy path (may be a glob)
    std::string path;  // the concrete path
    std::string tag;
    policy::Compensation compensation = policy::Compensation::kRestore;
    bool is_dir = false;
    std::vector<FileImage> before;    // at Prepare, sorted by rel
    std::vector<FileImage> reported;  // last state CollectEffects reported
  };
  struct CommittedImage {
    bool present = true;  // false: the promoted branch deleted it
    FileImage image;      // its state after the promoted branch's action
  };
  // This branch's changes as of the last CollectEffects, for its siblings'
  // Restore once it is promoted.
  CommittedState Committed() const;

 private:
  LossyJournal() = default;
  // Prepare's work after the journal directory exists.
  Status CaptureAll(const policy::Policy& policy);
  Status Journal(std::vector<LossyRecord>& out, LossyRecord record);
  Status WriteManifest() const;

  LossyOptions options_;
  std::string state_dir_;
  UniqueFd root_;  // options_.host_root, O_PATH
  std::vector<Entry> entries_;
  int64_t prepared_unix_ns_ = 0;  // 0: a manifest from before it was kept
  // CollectEffects ran (the branch's action ended): `reported` is what the
  // branch left, so Restore leaves alone what it did not change (another
  // session's or sibling's later write to a shared lossy path). False after
  // Load: a restart knows only the pre-images, and restores them all.
  bool collected_ = false;
  std::vector<sandbox::BindMount> binds_;
  std::vector<LossyRecord> records_;
};

}  // namespace specula::lossy
