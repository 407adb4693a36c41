// The btrfs kernel interface the store needs (docs/checkpoints.md, "Disk
// limits"): subvolumes made, snapshotted and deleted through ioctls on fds
// (never by running `btrfs` per branch), the qgroup limit of one subvolume,
// and quota bookkeeping of the whole filesystem. Each kernel object the
// store holds is one move-only owner of the fd it is reached through.
//
// Linux 6.7 added simple quotas (BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA): the
// usage of a subvolume is what was written in it (extents are charged to
// the subvolume that created them, shared extents of a snapshot stay with
// their creator), which is exactly "the bytes this branch added" and costs
// no backref walks. Full qgroups (older kernels) count a snapshot's shared
// extents in its "referenced" figure, so there the limit is on "exclusive".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::store::btrfs {

enum class QuotaMode {
  kOff,     // no quota accounting: limits cannot be set
  kSimple,  // simple quotas (Linux >= 6.7)
  kFull,    // classic qgroups
};
std::string_view QuotaModeName(QuotaMode mode);  // "off", "simple", "full"

// Whether the file open at `fd` lives on btrfs.
bool OnBtrfs(int fd);

// (Whether a directory is a subvolume's root: IsBtrfsSubvolumeRoot in
// common/files.h, which RemoveTree uses to delete subvolumes whole.)

// What the kernel charges one subvolume now and the limit it enforces.
struct QgroupUsage {
  uint64_t used = 0;   // bytes counted against the limit, reservations included
  uint64_t limit = 0;  // 0: no limit
};

// The root directory of a subvolume, open (O_DIRECTORY) for its ioctls.
class Subvolume {
 public:
  // Creates the subvolume `name` in the directory open at `parent_fd`
  // (BTRFS_IOC_SUBVOL_CREATE_V2): an empty tree, mode 0755 root:root.
  // `where` names it in errors.
  static Result<Subvolume> Create(int parent_fd, const std::string& name, const std::string& where);
  // A writable snapshot of `source`, as `name` in `parent_fd`
  // (BTRFS_IOC_SNAP_CREATE_V2). Costs one transaction commit.
  static Result<Subvolume> Snapshot(const Subvolume& source, int parent_fd, const std::string& name,
                                    const std::string& where);
  // The subvolume whose root is `path`: failed_precondition if it is not one.
  static Result<Subvolume> Open(const std::string& path);

  Subvolume(Subvolume&&) noexcept = default;
  Subvolume& operator=(Subvolume&&) noexcept = default;
  Subvolume(const Subvolume&) = delete;
  Subvolume& operator=(const Subvolume&) = delete;

  int fd() const { return fd_.get(); }
  uint64_t id() const { return id_; }
  const std::string& path() const { return path_; }

  // Caps what may be written into this subvolume at `bytes` (its level-0
  // qgroup): max referenced under simple quotas (where it equals what the
  // subvolume wrote), max exclusive under full qgroups (referenced would
  // count a snapshot's inherited extents). Then writes fail with EDQUOT.
  Status SetLimit(uint64_t bytes, QuotaMode mode);
  // Removes the cap. At a full quota even a rename inside the subvolume
  // fails with EDQUOT (metadata is charged too), so the store lifts it
  // before it moves anything in a finished branch.
  Status ClearLimit(QuotaMode mode);

 private:
  Subvolume(UniqueFd fd, uint64_t id, std::string path) : fd_(std::move(fd)), id_(id), path_(std::move(path)) {}
  static Result<Subvolume> Adopt(int parent_fd, const std::string& name, const std::string& where);
  UniqueFd fd_;
  uint64_t id_ = 0;
  std::string path_;
};

// Deletes the subvolume `name` in the directory open at `parent_fd`
// (BTRFS_IOC_SNAP_DESTROY), whatever it holds: O(1) for the caller, the
// kernel's cleaner frees its blocks in the background.
Status DestroySubvolume(int parent_fd, const std::string& name, const std::string& where);

// A mounted btrfs filesystem, through its top-level directory.
class Filesystem {
 public:
  // `mount_point` must be the top of a btrfs mount.
  static Result<Filesystem> Open(const std::string& mount_point);

  Filesystem(Filesystem&&) noexcept = default;
  Filesystem& operator=(Filesystem&&) noexcept = default;
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  const std::string& uuid() const { return uuid_; }
  // The quota accounting the kernel does on it now (/sys/fs/btrfs/<uuid>).
  QuotaMode quota_mode() const;
  // Turns quotas on (BTRFS_IOC_QUOTA_CTL): simple quotas where the kernel
  // has them (unless !simple), else full qgroups. A no-op if they are on.
  Result<QuotaMode> EnableQuotas(bool simple = true);
  // What subvolume `id` is charged now (sysfs: the in-memory figures,
  // current without a transaction commit).
  Result<QgroupUsage> Usage(uint64_t subvolume_id) const;
  // Removes level-0 qgroups whose subvolume no longer exists (left by
  // kernels that do not drop them with the subvolume, or by a crash).
  // Ones still being cleaned are left for a later call. Returns how many
  // were removed.
  Result<size_t> RemoveStaleQgroups() const;
  // Commits the running transaction and wakes the cleaner, so that deleted
  // subvolumes are freed (and their blocks discarded) now rather than at
  // the next periodic commit.
  Status Sync() const;

 private:
  Filesystem(UniqueFd fd, std::string mount_point, std::string uuid)
      : fd_(std::move(fd)), mount_point_(std::move(mount_point)), uuid_(std::move(uuid)) {}
  std::string SysfsDir() const { return "/sys/fs/btrfs/" + uuid_; }

  UniqueFd fd_;
  std::string mount_point_;
  std::string uuid_;
};

}  // namespace specula::store::btrfs
