// The checkpoint store (docs/checkpoints.md): everything a session's history
// needs on disk under one state directory:
//   <state>/specula.db       SQLite metadata (sessions, checkpoints, layers, branches)
//   <state>/fs/layers/<id>/fs  sealed layers: former overlay upper dirs, immutable
//   <state>/fs/branches/<id>/  scratch of live branches: upper/, work/, run/
//   <state>/images/<ckpt>/     CRIU images of checkpoints with live processes (+ dump log)
// Layers and branch scratch share one filesystem, so sealing an upper dir
// into a layer is a rename: O(1), independent of the base's size.
// That filesystem is the store's own (an ext4 image, <state>/layers.img,
// loop-mounted on <state>/fs): overlayfs refuses a lowerdir that lies inside
// another lowerdir on the same filesystem ("overlapping lowerdir path",
// ELOOP), so layers kept under /var/lib could never be stacked over the
// base "/". On a separate filesystem they can.
// Thread-safe: one connection behind a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/store/sqlite_db.h"

namespace specula::store {

// "<prefix>" + base32 (lowercase, RFC 4648 alphabet) of 40 random bits:
// e.g. "c3kq7ma2z". Printable, short, and collision-free enough per store
// (ids are also primary keys, so a collision fails loudly, never silently).
Result<std::string> NewId(char prefix);

struct SessionRecord {
  std::string id;
  std::string name;
  std::string base;         // the base directory
  std::string target;       // "layer" or "base"
  std::string policy_text;  // the policy as given (TOML), may be empty: built-in default
  std::string policy_path;  // where it came from, may be empty
  std::string head;         // current checkpoint id
  int64_t created_ms = 0;
};

struct CheckpointRecord {
  std::string id;
  std::string session;
  std::string parent;                // empty: the session's root checkpoint
  std::string command;               // the action that produced it (empty for the root)
  int64_t created_ms = 0;
  std::vector<std::string> layers;   // layer ids, lowest first
  std::string shell_state;           // sandbox::ShellState::Serialize() text
  bool has_process_image = false;
  std::string image_dir;             // empty unless has_process_image
  uint64_t layer_bytes = 0;          // bytes of the layer this checkpoint added
  uint64_t image_bytes = 0;
  std::string apply_record;          // target base: the apply journal record (JSON), else empty
};

struct LayerRecord {
  std::string id;
  std::string session;
  std::string path;  // <state>/layers/<id>/fs
  uint64_t bytes = 0;
  int64_t created_ms = 0;
  std::vector<std::string> squashed_from;  // non-empty for a squash of older layers
};

struct BranchRecord {
  std::string id;
  std::string session;
  std::string parent_checkpoint;
  std::string command;
  std::string state;        // starting|running|blocked|done|promoted|discarded|failed
  std::string result_json;  // the ActionResult as JSON once known
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // Kept after the branch is gone so `branch.show` can still say what it did
  // (schema version 2). Initialised here so the fields above can still be
  // given positionally without -Wmissing-field-initializers.
  std::string report_json = {};  // instrument::ToJson of its action's report, "" if none
  std::string error = {};        // why it failed, "" unless it did
  uint64_t upper_bytes = 0;      // size of its upper dir, last measured
  std::string reason = {};       // why it ended ("promoted by commit", "discarded: abort", ...)
};

// A change to a branch's record: fields left unset keep their stored value.
struct BranchUpdate {
  std::optional<std::string> state;
  std::optional<std::string> result_json;
  std::optional<std::string> report_json;
  std::optional<std::string> error;
  std::optional<uint64_t> upper_bytes;
  std::optional<std::string> reason;
};

struct StoreOptions {
  // Keep layers and branch dirs on the store's own loop-mounted ext4 image
  // (see above). Off only for a state dir already on a filesystem that no
  // session base contains.
  bool dedicated_fs = true;
  uint64_t fs_bytes = 64ULL << 30;  // sparse: only what is written takes space
};

class CheckpointStore {
 public:
  static constexpr int kSchemaVersion = 2;

  // Creates the layout if missing, opens the database and migrates it to
  // kSchemaVersion. A database newer than this build: failed_precondition.
  static Result<std::unique_ptr<CheckpointStore>> Open(const std::string& state_dir,
                                                       const StoreOptions& opts = {});
  ~CheckpointStore();  // unmounts the layer filesystem if Open mounted it

  const std::string& state_dir() const { return dir_; }
  std::string LayerPath(const std::string& layer_id) const;
  std::string ImageDir(const std::string& checkpoint_id) const;
  std::string BranchDir(const std::string& branch_id) const;
  std::string JournalDir() const;

  // Sessions.
  Status PutSession(const SessionRecord& s);  // insert
  Result<SessionRecord> GetSession(const std::string& id);
  Result<std::vector<SessionRecord>> ListSessions();
  Status SetHead(const std::string& session, const std::string& checkpoint);
  // Deletes the session's rows and its layers, images and branch dirs.
  Status DeleteSession(const std::string& id);

  // Checkpoints (immutable once put).
  Status PutCheckpoint(const CheckpointRecord& c);
  // Puts c and makes it the session's head, atomically.
  Status PutCheckpointAsHead(const CheckpointRecord& c);
  Result<CheckpointRecord> GetCheckpoint(const std::string& id);
  Result<std::vector<CheckpointRecord>> ListCheckpoints(const std::string& session);

  // Layers: seals `upper_dir` (on the store's filesystem) as a new layer of
  // `session`: renames it into layers/<id>/fs and makes the container
  // read-only. The caller must no longer have it mounted as an upper.
  Result<LayerRecord> SealLayer(const std::string& session, const std::string& upper_dir,
                                std::vector<std::string> squashed_from = {});
  Result<LayerRecord> GetLayer(const std::string& id);

  // Branches.
  Status PutBranch(const BranchRecord& b);
  Status UpdateBranch(const std::string& id, const std::string& state,
                      const std::optional<std::string>& result_json = std::nullopt);
  Status UpdateBranch(const std::string& id, const BranchUpdate& u);
  Result<BranchRecord> GetBranch(const std::string& id);
  Result<std::vector<BranchRecord>> ListBranches(const std::string& session);

  // Crash recovery (store_gc.cpp): removes what no row reaches any more, left
  // by a crash between writing files and recording them (a CRIU image or a
  // sealed layer whose checkpoint never reached the database) or between
  // deleting rows and files (DeleteSession). Only while nothing else uses
  // the store: at start, before any session is served.
  struct OrphanReport {
    size_t image_dirs = 0;   // images/<id> of no checkpoint
    size_t layer_rows = 0;   // layers no checkpoint lists
    size_t layer_dirs = 0;   // layers/<id> of no layer row (incl. the above)
  };
  Result<OrphanReport> RemoveOrphans();

 private:
  CheckpointStore(std::string dir, SqliteDb db) : dir_(std::move(dir)), fs_dir_(dir_), db_(std::move(db)) {}
  Status MountLayerFs(const StoreOptions& opts);
  Status Migrate();
  Status InsertCheckpointLocked(const CheckpointRecord& c);

  std::string dir_;
  std::string fs_dir_;  // where layers/ and branches/ live
  bool mounted_fs_ = false;
  std::mutex mu_;
  SqliteDb db_;
};

}  // namespace specula::store
