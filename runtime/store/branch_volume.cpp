// Branch volumes and sealing (docs/checkpoints.md, "Disk limits").
//
// On a btrfs store a branch writes into its own subvolume,
//   branches/<id>/vol/          the subvolume: its qgroup has the disk limit
//   branches/<id>/vol/upper     the overlay upper dir
//   branches/<id>/vol/work      the overlay work dir
// Upper and work must share the subvolume: overlayfs copies a file up by
// writing it in the work dir and renaming it into the upper, and btrfs
// refuses a rename between subvolumes (EXDEV). Sealing renames upper to fs
// and the subvolume into layers/<layer id>: still O(1).
//
// Inode numbers. Each subvolume numbers its inodes on its own, and overlayfs
// reports (its own device, the real inode number) for every file on one
// filesystem: files of two subvolumes with the same number would look like
// one file (`cp a b`: "are the same file", `diff` and `cmp` would not even
// read them). So a volume is never a fresh subvolume when there are layers
// below it: it is a snapshot of the newest volume of its stack (btrfs
// continues a snapshot's numbering above its source's highest), with the
// source's files moved aside into .lineage/ where no overlay looks. Numbers
// therefore grow along every stack: no two layers of a checkpoint, nor its
// new upper, share one. Snapshots share every block with their source, so
// the copy costs nothing but the transaction commit a snapshot takes.
//
// Elsewhere (ext4 stores, no dedicated filesystem) a volume is a plain
// directory and the layout is the same.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <spdlog/spdlog.h>

#include "common/crash_point.h"
#include "common/files.h"
#include "common/time.h"
#include "common/unique_fd.h"
#include "runtime/store/checkpoint_store.h"

namespace specula::store {
namespace {

std::string Dirname(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? "/" : p.substr(0, slash);
}

// The upper's root takes `like`'s mode and owner: the overlay's `/` shows
// the upper root's attributes, so this is what keeps the base's (0755
// root:root for a host) instead of the 0700 of a private directory, and what
// carries an action's `chmod /` from a layer into the next branch.
Status CopyRootAttrs(const std::string& like, const std::string& upper) {
  struct stat st {};
  if (::stat(like.c_str(), &st) != 0) return Error::FromErrno("stat " + like);
  // chown first: it clears set-id bits, which the mode then restores.
  if (::chown(upper.c_str(), st.st_uid, st.st_gid) != 0) return Error::FromErrno("chown " + upper);
  if (::chmod(upper.c_str(), st.st_mode & 07777) != 0) return Error::FromErrno("chmod " + upper);
  return Status::Ok();
}

}  // namespace

Result<BranchVolume> CheckpointStore::CreateBranchVolume(const std::string& id, const VolumeRequest& req) {
  BranchVolume v;
  v.dir = BranchDir(id);
  v.volume = v.dir + "/vol";
  v.upper = v.volume + "/upper";
  v.work = v.volume + "/work";
  SPECULA_TRY_CTX(MakeDirs(v.dir, 0700), "branch " + id);
  auto fail = [&](Error e) -> Error {
    (void)RemoveTree(v.dir);  // a subvolume in it is deleted too
    return std::move(e.Context("volume of branch " + id));
  };
  if (limits()) {
    UniqueFd dirfd(::open(v.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dirfd) return fail(Error::FromErrno("open " + v.dir));
    // The newest volume of the stack has the highest subvolume id and the
    // highest inode numbers of all (see above).
    std::optional<btrfs::Subvolume> source;
    std::string source_layer;
    for (const auto& l : req.stack) {
      auto sv = btrfs::Subvolume::Open(fs_dir_ + "/layers/" + l);
      if (!sv.ok()) continue;  // a plain layer (made without limits): nothing to continue
      if (!source || sv->id() > source->id()) {
        source = std::move(*sv);
        source_layer = l;
      }
    }
    auto vol = source ? btrfs::Subvolume::Snapshot(*source, dirfd.get(), "vol", v.volume)
                      : btrfs::Subvolume::Create(dirfd.get(), "vol", v.volume);
    if (!vol.ok()) return fail(std::move(vol).error());
    if (source) {
      std::string aside = v.volume + "/.lineage";
      if (Status st = MakeDirs(aside, 0700); !st.ok()) return fail(std::move(st).error());
      aside += "/" + source_layer;
      if (::rename((v.volume + "/fs").c_str(), aside.c_str()) != 0 && errno != ENOENT) {
        return fail(Error::FromErrno("move " + v.volume + "/fs aside"));
      }
    }
    // A snapshot of a sealed layer is 0500 like it; a branch volume is private.
    if (::fchmod(vol->fd(), 0700) != 0) return fail(Error::FromErrno("chmod " + v.volume));
    if (req.disk_limit > 0) {
      if (Status st = vol->SetLimit(req.disk_limit, fs_info_.quota); !st.ok()) return fail(std::move(st).error());
    }
  } else if (::mkdir(v.volume.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(Error::FromErrno("mkdir " + v.volume));
  }
  if (req.make_upper) {
    if (::mkdir(v.upper.c_str(), 0700) != 0) return fail(Error::FromErrno("mkdir " + v.upper));
    if (!req.root_like.empty()) {
      if (Status st = CopyRootAttrs(req.root_like, v.upper); !st.ok()) return fail(std::move(st).error());
    }
  }
  if (::mkdir(v.work.c_str(), 0700) != 0) return fail(Error::FromErrno("mkdir " + v.work));
  return v;
}

std::optional<btrfs::QgroupUsage> CheckpointStore::BranchDiskUsage(const std::string& id) {
  if (!limits()) return std::nullopt;
  auto sv = btrfs::Subvolume::Open(BranchDir(id) + "/vol");
  if (!sv.ok()) return std::nullopt;
  auto u = btrfs_->Usage(sv->id());
  if (!u.ok()) {
    spdlog::debug("branch {}: disk usage: {}", id, u.error().ToString());
    return std::nullopt;
  }
  return *u;
}

Status CheckpointStore::LiftDiskLimit(const std::string& id) {
  if (!limits()) return Status::Ok();
  std::string vol = BranchDir(id) + "/vol";
  UniqueFd dir(::open(BranchDir(id).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir || !IsBtrfsSubvolumeRoot(dir.get(), "vol")) return Status::Ok();  // gone, or a plain volume
  SPECULA_ASSIGN_OR_RETURN(auto sv, btrfs::Subvolume::Open(vol));
  return sv.ClearLimit(fs_info_.quota).Context("branch " + id);
}

Status CheckpointStore::SyncFilesystem() {
  UniqueFd dir(::open(fs_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Error::FromErrno("open the store " + fs_dir_ + " to sync it");
  if (::syncfs(dir.get()) != 0) {
    return Error::FromErrno("syncfs " + fs_dir_).WithHint("the store's disk refused a write back: see dmesg");
  }
  return Status::Ok();
}

Result<LayerRecord> CheckpointStore::SealLayer(const std::string& session, const std::string& upper_dir,
                                               std::vector<std::string> squashed_from) {
  SPECULA_ASSIGN_OR_RETURN(std::string id, NewId('l'));
  std::string container = fs_dir_ + "/layers/" + id;
  std::string path = container + "/fs";
  std::string volume = Dirname(upper_dir);
  UniqueFd above(::open(Dirname(volume).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  std::string volume_name = volume.substr(volume.find_last_of('/') + 1);
  if (above && IsBtrfsSubvolumeRoot(above.get(), volume_name.c_str())) {
    // The upper of a branch volume: the subvolume becomes the layer.
    if (limits()) {
      SPECULA_ASSIGN_OR_RETURN(auto sv, btrfs::Subvolume::Open(volume));
      // At a full quota even these renames fail with EDQUOT.
      SPECULA_TRY_CTX(sv.ClearLimit(fs_info_.quota), "seal layer");
    }
    // The work dir's index holds extra hard links to upper files: a layer
    // must show their real link counts.
    SPECULA_TRY_CTX(RemoveTree(volume + "/work"), "seal layer");
    std::string fs_in_volume = volume + "/fs";
    if (::rename(upper_dir.c_str(), fs_in_volume.c_str()) != 0) {
      return Error::FromErrno("seal layer: rename " + upper_dir + " to " + fs_in_volume);
    }
    CrashPoint("seal.between-renames");  // leaves a branch dir: crash recovery removes it
    if (::rename(volume.c_str(), container.c_str()) != 0) {
      Error e = Error::FromErrno("seal layer: rename " + volume + " to " + container);
      (void)::rename(fs_in_volume.c_str(), upper_dir.c_str());
      return e;
    }
    CrashPoint("seal.after-rename");  // a layers/<id> subvolume with no row: RemoveOrphans
  } else {
    if (::mkdir(container.c_str(), 0700) != 0) return Error::FromErrno("seal layer: mkdir " + container);
    if (::rename(upper_dir.c_str(), path.c_str()) != 0) {
      Error e = Error::FromErrno("seal layer: rename " + upper_dir + " to " + path);
      ::rmdir(container.c_str());
      if (e.sys_errno() == EXDEV) e.WithHint("branch dirs and layers must be on one filesystem (the state dir)");
      return e;
    }
  }
  // Read-only marker on the container; the files themselves are never
  // written again because a sealed layer is only ever an overlay lowerdir.
  // (A per-file chmod would be O(size) and change what the layer shows.)
  ::chmod(container.c_str(), 0500);
  SPECULA_ASSIGN_OR_RETURN(uint64_t bytes, DiskUsage(path));
  return RecordLayer(LayerRecord{id, session, path, bytes, NowMs(), std::move(squashed_from)});
}

}  // namespace specula::store
