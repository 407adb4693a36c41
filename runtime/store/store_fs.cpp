// CheckpointStore's own filesystem (docs/checkpoints.md, "Disk limits"):
// the sparse image <state>/layers.img, loop-mounted on <state>/fs.
//
// A new store is btrfs with quotas, so that each branch volume can have the
// policy's disk limit (ext4 and XFS quotas are not available everywhere;
// btrfs qgroups come with btrfs itself). It is mounted nodev,nosuid (nothing
// on it is ever used through this mount: sandboxes see it through their
// overlay, whose own flags decide), noatime, and with discard, so that blocks
// freed by a discarded branch or a destroyed session are punched out of the
// sparse image and really return to the host's filesystem.
//
// Stores made by older builds are ext4. One that holds no session is
// converted (nothing in it can be lost); one that does keeps working as it
// is, without disk limits, and says so in the log and in `specula doctor`.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/files.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "runtime/store/checkpoint_store.h"

namespace specula::store {
namespace {

constexpr const char* kBtrfsMount = "loop,nodev,nosuid,noatime,discard=async";
// ext4's discard is synchronous on unlink; async was btrfs's refinement.
constexpr const char* kExt4Mount = "loop,nodev,nosuid,noatime,discard";
constexpr const char* kInstallBtrfs = "install btrfs-progs (scripts/setup.sh)";

enum class ImageType { kNone, kBtrfs, kExt4, kUnknown };

// What the image holds, from its superblock's magic: btrfs's "_BHRfS_M" at
// 64 KiB + 64, ext2/3/4's 0xEF53 at 1024 + 56.
Result<ImageType> ReadImageType(const std::string& img) {
  UniqueFd fd(::open(img.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return ImageType::kNone;
    return Error::FromErrno("open " + img);
  }
  char btrfs[8] = {};
  if (::pread(fd.get(), btrfs, sizeof(btrfs), 0x10040) == sizeof(btrfs) && std::memcmp(btrfs, "_BHRfS_M", 8) == 0) {
    return ImageType::kBtrfs;
  }
  unsigned char ext[2] = {};
  if (::pread(fd.get(), ext, sizeof(ext), 0x438) == sizeof(ext) && ext[0] == 0x53 && ext[1] == 0xEF) {
    return ImageType::kExt4;
  }
  return ImageType::kUnknown;
}

StoreFsType Wanted(const StoreOptions& opts) {
  if (opts.new_fs != StoreFsType::kAuto) return opts.new_fs;
  const char* env = std::getenv("SPECULA_STORE_FS");
  if (env != nullptr && std::strcmp(env, "ext4") == 0) return StoreFsType::kExt4;
  if (env != nullptr && std::strcmp(env, "btrfs") == 0) return StoreFsType::kBtrfs;
  return StoreFsType::kAuto;
}

// Runs a tool; its own error lines on failure.
Status Run(std::vector<std::string> argv, const std::string& what, const char* hint) {
  std::string tool = argv[0];
  auto r = Spawn(SpawnOptions{std::move(argv)});
  if (!r.ok()) {
    Error e = std::move(r).error().Context(what);
    if (e.sys_errno() == ENOENT) e.WithHint(hint);
    return e;
  }
  if (!r->success()) return Error(Code::kUnavailable, what + ": " + ErrorLines(r->err + r->out)).WithHint(hint);
  return Status::Ok();
}

Status MakeImage(const std::string& img, uint64_t bytes, StoreFsType type) {
  ::unlink(img.c_str());
  SPECULA_TRY(Run({"truncate", "-s", std::to_string(bytes), img}, "create " + img, "install coreutils"));
  Status made =
      type == StoreFsType::kExt4
          // Without lazy init work: milliseconds instead of seconds.
          ? Run({"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", img}, "mkfs.ext4 " + img,
                "install e2fsprogs")
          // One copy of metadata: the image is one file on one disk, DUP
          // would only double the metadata writes.
          : Run({"mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", img}, "mkfs.btrfs " + img, kInstallBtrfs);
  if (!made.ok()) ::unlink(img.c_str());
  return made;
}

Status MountImage(const std::string& img, const std::string& mnt, ImageType type) {
  const char* opts = type == ImageType::kBtrfs ? kBtrfsMount : kExt4Mount;
  return Run({"mount", "-o", opts, img, mnt}, "mount -o loop " + img, "see `specula doctor` (store.disk_limits)");
}

}  // namespace

Result<bool> CheckpointStore::IsEmptyLocked() {
  SPECULA_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT COUNT(*) FROM sessions"));
  SPECULA_ASSIGN_OR_RETURN(bool row, q.Step());
  return !row || q.Int(0) == 0;
}

Status CheckpointStore::MakeLayerFs(const StoreOptions& opts, const std::string& img) {
  std::string mnt = dir_ + "/fs";
  StoreFsType want = Wanted(opts);
  if (want != StoreFsType::kExt4) {
    Status st = MakeImage(img, opts.fs_bytes, StoreFsType::kBtrfs);
    if (st.ok()) st = MountImage(img, mnt, ImageType::kBtrfs);
    if (st.ok()) return Status::Ok();
    if (want == StoreFsType::kBtrfs) return st;
    ::unlink(img.c_str());
    fs_info_.note = "btrfs unavailable (" + st.error().message() + ")";
    spdlog::warn("store {}: {}: new store made ext4, policy disk limits (resources.disk) are NOT enforced; {}", dir_,
                 fs_info_.note, kInstallBtrfs);
  }
  SPECULA_TRY(MakeImage(img, opts.fs_bytes, StoreFsType::kExt4));
  return MountImage(img, mnt, ImageType::kExt4);
}

Status CheckpointStore::MountLayerFs(const StoreOptions& opts) {
  std::string img = dir_ + "/layers.img";
  std::string mnt = dir_ + "/fs";
  fs_info_.note.clear();  // set below if limits end up not enforced
  SPECULA_TRY(MakeDirs(mnt, 0700));
  struct stat top, m;
  if (::stat(dir_.c_str(), &top) != 0 || ::stat(mnt.c_str(), &m) != 0) return Error::FromErrno("stat " + mnt);
  fs_dir_ = mnt;
  if (top.st_dev != m.st_dev) {
    // Left mounted by a daemon that crashed: adopt it, so it is unmounted
    // when this store closes instead of outliving every daemon.
    mounted_fs_ = true;
  } else {
    SPECULA_ASSIGN_OR_RETURN(ImageType type, ReadImageType(img));
    if (type == ImageType::kExt4 && Wanted(opts) != StoreFsType::kExt4) {
      bool empty = false;
      {
        std::lock_guard lock(mu_);
        SPECULA_ASSIGN_OR_RETURN(empty, IsEmptyLocked());
      }
      if (empty) {
        // An older build's ext4 store with no session: nothing to keep, and
        // a btrfs one enforces disk limits.
        spdlog::info("store {}: converting the empty ext4 layer filesystem of an older specula to btrfs", dir_);
        type = ImageType::kNone;
      }
    }
    if (type == ImageType::kUnknown) {
      return Error(Code::kDataLoss, img + " holds neither a btrfs nor an ext4 filesystem")
          .WithHint("move it away (speculad makes a new one), or use another --state-dir");
    }
    if (type == ImageType::kNone) {
      SPECULA_TRY(MakeLayerFs(opts, img));
    } else {
      SPECULA_TRY(MountImage(img, mnt, type));
    }
    mounted_fs_ = true;
  }
  struct statfs fs {};
  if (::statfs(mnt.c_str(), &fs) != 0) return Error::FromErrno("statfs " + mnt);
  if (static_cast<uint64_t>(fs.f_type) == BTRFS_SUPER_MAGIC) return StartQuotas(opts);
  fs_info_.type = static_cast<uint64_t>(fs.f_type) == EXT4_SUPER_MAGIC ? "ext4" : "other";
  fs_info_.quota = btrfs::QuotaMode::kOff;
  if (fs_info_.note.empty()) {
    fs_info_.note = "the layer filesystem is " + fs_info_.type + ", made by an older specula";
    spdlog::warn("store {}: {}: policy disk limits (resources.disk) are NOT enforced. To enforce them, destroy "
                 "this store's sessions and restart speculad (an empty store is converted to btrfs), or use a new "
                 "--state-dir",
                 dir_, fs_info_.note);
  }
  return Status::Ok();
}

Status CheckpointStore::StartQuotas(const StoreOptions& opts) {
  SPECULA_ASSIGN_OR_RETURN(auto fs, btrfs::Filesystem::Open(fs_dir_));
  btrfs_.emplace(std::move(fs));
  fs_info_.type = "btrfs";
  // Also on an existing store: quotas someone turned off come back on.
  const char* env = std::getenv("SPECULA_STORE_QGROUPS");  // "full": as on kernels before 6.7
  bool full = opts.full_qgroups || (env != nullptr && std::strcmp(env, "full") == 0);
  Result<btrfs::QuotaMode> mode = btrfs_->EnableQuotas(/*simple=*/!full);
  if (!mode.ok()) {
    fs_info_.quota = btrfs::QuotaMode::kOff;
    fs_info_.note = "quotas cannot be turned on: " + mode.error().message();
    spdlog::warn("store {}: {}: policy disk limits (resources.disk) are NOT enforced", dir_, fs_info_.note);
    return Status::Ok();
  }
  fs_info_.quota = *mode;
  fs_info_.note.clear();
  spdlog::info("store {}: btrfs layer filesystem, {} quotas: branch disk limits enforced", dir_,
               btrfs::QuotaModeName(*mode));
  return Status::Ok();
}

}  // namespace specula::store
