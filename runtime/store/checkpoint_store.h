// The checkpoint store (docs/checkpoints.md): everything a session's history
// needs on disk under one state directory:
//   <state>/specula.db       SQLite metadata (sessions, checkpoints, layers, branches)
//   <state>/fs/layers/<id>/fs  sealed layers: former overlay upper dirs, immutable
//   <state>/fs/branches/<id>/  scratch of live branches: vol/{upper,work}, run/, criu/
//   <state>/images/<ckpt>/     CRIU images of checkpoints with live processes (+ dump log)
// Layers and branch scratch share one filesystem, so sealing an upper dir
// into a layer is a rename: O(1), independent of the base's size.
// That filesystem is the store's own (<state>/layers.img, loop-mounted on
// <state>/fs): overlayfs refuses a lowerdir that lies inside another
// lowerdir on the same filesystem ("overlapping lowerdir path", ELOOP), so
// layers kept under /var/lib could never be stacked over the base "/". On a
// separate filesystem they can. It is btrfs with quotas, so that each
// branch's volume (a subvolume holding its upper and work dirs) has the
// policy's disk limit (store_fs.cpp, branch_volume.cpp); stores made by
// older builds are ext4 and keep working without limits.
// Thread-safe: one connection behind a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/store/btrfs.h"
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
  // Who launched it and why (schema version 4): {"source", "confidence"}
  // as JSON for a branch of the daemon's transparent speculation, "" for a
  // client's action.speculate or a commit's own run.
  std::string origin_json = {};
};

// How a branch row is written. kSynced (the default) returns once the row
// is on disk (synchronous=FULL: the WAL is fsynced, ~0.5 ms here). kRelaxed
// returns once SQLite has it (synchronous=NORMAL for this transaction): a
// killed daemon still finds it (it is in the page cache); a power loss may
// drop it until the next synced transaction, which fsyncs the WAL and so
// everything before it too. For what a restart throws away anyway: a
// speculative branch's record while it starts and runs (crash recovery
// works from the branch dirs, not the rows, and a promote commits synced).
enum class Durability { kSynced, kRelaxed };

// A change to a branch's record: fields left unset keep their stored value.
struct BranchUpdate {
  Durability durability = Durability::kSynced;
  std::optional<std::string> state;
  std::optional<std::string> result_json;
  std::optional<std::string> report_json;
  std::optional<std::string> error;
  std::optional<uint64_t> upper_bytes;
  std::optional<std::string> reason;
};

// The filesystem a new dedicated store is made with.
enum class StoreFsType {
  kAuto,   // btrfs with quotas; ext4 (no disk limits) if this host cannot
  kBtrfs,  // btrfs or fail
  kExt4,   // what older builds made: no disk limits (tests of old stores)
};

struct StoreOptions {
  // Keep layers and branch dirs on the store's own loop-mounted image (see
  // above). Off only for a state dir already on a filesystem that no
  // session base contains; then branch volumes are plain directories and
  // disk limits are not enforced.
  bool dedicated_fs = true;
  uint64_t fs_bytes = 64ULL << 30;  // sparse: only what is written takes space
  // kAuto reads SPECULA_STORE_FS ("btrfs", "ext4") if set.
  StoreFsType new_fs = StoreFsType::kAuto;
  // Classic qgroups even where simple quotas exist (tests of older kernels);
  // also SPECULA_STORE_QGROUPS=full. Only when quotas are first turned on.
  bool full_qgroups = false;
};

// What the store's filesystem can do (`specula doctor`: store.fs).
struct StoreFsInfo {
  std::string type;  // "btrfs", "ext4", or "none" (no dedicated filesystem)
  btrfs::QuotaMode quota = btrfs::QuotaMode::kOff;
  bool limits_enforced() const { return quota != btrfs::QuotaMode::kOff; }
  std::string note;  // why limits are not enforced, empty if they are
};

// A branch's private writable volume (branch_volume.cpp): on a btrfs store
// a subvolume with the branch's disk limit, else a plain directory.
struct BranchVolume {
  std::string dir;    // BranchDir(id): run/, criu/ and lossy pre-images go here
  std::string volume; // dir/vol: what the limit applies to
  std::string upper;  // volume/upper: the overlay upper dir
  std::string work;   // volume/work: the overlay work dir (same subvolume:
                      // copy-up renames from work to upper, EXDEV across)
};

struct VolumeRequest {
  // The layers of the checkpoint forked from, lowest first: the volume is
  // made so that its inode numbers are above all of theirs.
  std::vector<std::string> stack;
  uint64_t disk_limit = 0;  // bytes, 0: none
  // The directory whose mode and owner the upper's root takes (the
  // overlay's `/` shows the upper root's): the topmost layer, or the base.
  std::string root_like;
  bool make_upper = true;   // false: the caller creates `upper` (a squash)
};

class CheckpointStore {
 public:
  static constexpr int kSchemaVersion = 5;

  // Creates the layout if missing, opens the database and migrates it to
  // kSchemaVersion. A database newer than this build: failed_precondition.
  static Result<std::unique_ptr<CheckpointStore>> Open(const std::string& state_dir,
                                                       const StoreOptions& opts = {});
  ~CheckpointStore();  // unmounts the layer filesystem if Open mounted it

  const std::string& state_dir() const { return dir_; }
  std::string LayerPath(const std::string& layer_id) const;
  std::string ImageDir(const std::string& checkpoint_id) const;
  std::string BranchDir(const std::string& branch_id) const;
  std::string BranchUpperDir(const std::string& branch_id) const { return BranchDir(branch_id) + "/vol/upper"; }
  std::string JournalDir() const;
  const StoreFsInfo& fs_info() const { return fs_info_; }

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
  // read-only. The upper of a branch volume takes its volume along (the
  // subvolume becomes layers/<id>; its work dir is removed first). The
  // caller must no longer have it mounted as an upper.
  Result<LayerRecord> SealLayer(const std::string& session, const std::string& upper_dir,
                                std::vector<std::string> squashed_from = {});
  Result<LayerRecord> GetLayer(const std::string& id);

  // Branch volumes (branch_volume.cpp). Creates BranchDir(id) and its
  // volume; on failure nothing is left.
  Result<BranchVolume> CreateBranchVolume(const std::string& id, const VolumeRequest& req);
  // What the branch's volume is charged against its limit now; nullopt
  // where limits are not enforced.
  std::optional<btrfs::QgroupUsage> BranchDiskUsage(const std::string& id);
  // Lifts the branch's disk limit: once nothing runs in it any more, so that
  // sealing (renames in a full volume fail with EDQUOT) cannot fail.
  Status LiftDiskLimit(const std::string& id);
  // Writes back the filesystem layers, branches and images live on
  // (syncfs): what a promote seals or dumps is on disk before the
  // checkpoint that names it is recorded. Branch overlays are volatile
  // (sandbox/overlay.h sync_on_unmount), so no unmount does it any more.
  Status SyncFilesystem();

  // Branches.
  Status PutBranch(const BranchRecord& b, Durability d = Durability::kSynced);
  Status UpdateBranch(const std::string& id, const std::string& state,
                      const std::optional<std::string>& result_json = std::nullopt,
                      Durability d = Durability::kSynced);
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
    size_t qgroups = 0;      // quota groups of subvolumes that are gone
  };
  Result<OrphanReport> RemoveOrphans();

 private:
  CheckpointStore(std::string dir, SqliteDb db) : dir_(std::move(dir)), fs_dir_(dir_), db_(std::move(db)) {}
  // store_fs.cpp: mounts (making or converting) the layer filesystem.
  Status MountLayerFs(const StoreOptions& opts);
  Status MakeLayerFs(const StoreOptions& opts, const std::string& img);
  Status StartQuotas(const StoreOptions& opts);
  Result<bool> IsEmptyLocked();
  Status Migrate();
  Status FixLegacyLayerRootsLocked();
  Status InsertCheckpointLocked(const CheckpointRecord& c);
  // branch_volume.cpp
  Result<LayerRecord> RecordLayer(LayerRecord l);
  bool limits() const { return btrfs_.has_value() && fs_info_.limits_enforced(); }

  std::string dir_;
  std::string fs_dir_;  // where layers/ and branches/ live
  bool mounted_fs_ = false;
  StoreFsInfo fs_info_{"none", btrfs::QuotaMode::kOff, "no dedicated filesystem"};
  std::optional<btrfs::Filesystem> btrfs_;  // the layer filesystem, if btrfs
  std::mutex mu_;
  SqliteDb db_;
};

}  // namespace specula::store
