#include "runtime/store/btrfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

namespace specula::store::btrfs {
namespace {

// Debian 12's <linux/btrfs.h> is Linux 6.1's; simple quotas came in 6.7.
#ifndef BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA
constexpr uint64_t kEnableSimpleQuota = 4;
#else
constexpr uint64_t kEnableSimpleQuota = BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA;
#endif
// "No limit" as BTRFS_IOC_QGROUP_LIMIT takes it: the flag with all ones.
constexpr uint64_t kClearLimit = ~uint64_t{0};

// An ioctl's errno as an Error: ENOTTY means the fd is not on btrfs (or the
// kernel lacks the call), ENOTCONN that quotas are off, which the errno
// table would call internal; neither is a bug.
Error IoctlError(const std::string& what, int err) {
  Error e = Error::FromErrno(what, err);
  if (err == ENOTTY) {
    return Error(Code::kUnavailable, e.message(), err).WithHint("the store's filesystem is not btrfs");
  }
  if (err == ENOTCONN) {
    return Error(Code::kFailedPrecondition, e.message(), err)
        .WithHint("quotas are off on the store's filesystem; see `specula doctor` (store.fs)");
  }
  return e;
}

Status CopyName(char* dst, size_t cap, const std::string& name, const std::string& where) {
  if (name.empty() || name.size() >= cap || name.find('/') != std::string::npos) {
    return Error(Code::kInvalidArgument, "subvolume name '" + name + "' of " + where + " is not a plain name");
  }
  std::memcpy(dst, name.c_str(), name.size() + 1);
  return Status::Ok();
}

// The id of the subvolume whose root (or any dir) is open at `fd`.
Result<uint64_t> SubvolumeId(int fd, const std::string& where) {
  btrfs_ioctl_ino_lookup_args a{};
  a.treeid = 0;  // the tree of `fd` itself
  a.objectid = BTRFS_FIRST_FREE_OBJECTID;
  if (::ioctl(fd, BTRFS_IOC_INO_LOOKUP, &a) != 0) return IoctlError("subvolume id of " + where, errno);
  return static_cast<uint64_t>(a.treeid);
}

std::string FormatUuid(const unsigned char* u) {
  char out[37];
  std::snprintf(out, sizeof(out), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return out;
}

// One number from a sysfs attribute file; nullopt if absent or unreadable.
std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

Status SetQgroupLimit(int fd, uint64_t bytes, QuotaMode mode, const std::string& where) {
  btrfs_ioctl_qgroup_limit_args a{};
  a.qgroupid = 0;  // the qgroup of `fd`'s own subvolume
  if (mode == QuotaMode::kFull) {
    a.lim.flags = BTRFS_QGROUP_LIMIT_MAX_EXCL;
    a.lim.max_excl = bytes;
  } else {
    a.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
    a.lim.max_rfer = bytes;
  }
  if (::ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &a) != 0) return IoctlError("qgroup limit of " + where, errno);
  return Status::Ok();
}

}  // namespace

std::string_view QuotaModeName(QuotaMode mode) {
  switch (mode) {
    case QuotaMode::kOff: return "off";
    case QuotaMode::kSimple: return "simple";
    case QuotaMode::kFull: return "full";
  }
  return "off";
}

bool OnBtrfs(int fd) {
  struct statfs fs {};
  return ::fstatfs(fd, &fs) == 0 && static_cast<uint64_t>(fs.f_type) == BTRFS_SUPER_MAGIC;
}

Result<Subvolume> Subvolume::Create(int parent_fd, const std::string& name, const std::string& where) {
  btrfs_ioctl_vol_args_v2 a{};
  SPECULA_TRY(CopyName(a.name, sizeof(a.name), name, where));
  if (::ioctl(parent_fd, BTRFS_IOC_SUBVOL_CREATE_V2, &a) != 0) return IoctlError("create subvolume " + where, errno);
  return Adopt(parent_fd, name, where);
}

Result<Subvolume> Subvolume::Adopt(int parent_fd, const std::string& name, const std::string& where) {
  // Made a moment ago: if it cannot be opened it is deleted again, so a
  // failed create leaves nothing behind.
  UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    Error e = Error::FromErrno("open new subvolume " + where);
    (void)DestroySubvolume(parent_fd, name, where);
    return e;
  }
  auto id = SubvolumeId(fd.get(), where);
  if (!id.ok()) {
    (void)DestroySubvolume(parent_fd, name, where);
    return std::move(id).error();
  }
  return Subvolume(std::move(fd), *id, where);
}

Result<Subvolume> Subvolume::Snapshot(const Subvolume& source, int parent_fd, const std::string& name,
                                      const std::string& where) {
  btrfs_ioctl_vol_args_v2 a{};
  SPECULA_TRY(CopyName(a.name, sizeof(a.name), name, where));
  a.fd = source.fd();
  if (::ioctl(parent_fd, BTRFS_IOC_SNAP_CREATE_V2, &a) != 0) {
    return IoctlError("snapshot " + source.path() + " as " + where, errno);
  }
  return Adopt(parent_fd, name, where);
}

Result<Subvolume> Subvolume::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open subvolume " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::FromErrno("stat " + path);
  if (!OnBtrfs(fd.get()) || st.st_ino != BTRFS_FIRST_FREE_OBJECTID) {
    return Error(Code::kFailedPrecondition, path + " is not the root of a btrfs subvolume");
  }
  SPECULA_ASSIGN_OR_RETURN(uint64_t id, SubvolumeId(fd.get(), path));
  return Subvolume(std::move(fd), id, path);
}

Status Subvolume::SetLimit(uint64_t bytes, QuotaMode mode) {
  if (mode == QuotaMode::kOff) return Error(Code::kFailedPrecondition, "limit " + path_ + ": quotas are off");
  return SetQgroupLimit(fd_.get(), bytes, mode, path_);
}

Status Subvolume::ClearLimit(QuotaMode mode) {
  if (mode == QuotaMode::kOff) return Status::Ok();
  return SetQgroupLimit(fd_.get(), kClearLimit, mode, path_);
}

Status DestroySubvolume(int parent_fd, const std::string& name, const std::string& where) {
  btrfs_ioctl_vol_args a{};
  SPECULA_TRY(CopyName(a.name, sizeof(a.name), name, where));
  if (::ioctl(parent_fd, BTRFS_IOC_SNAP_DESTROY, &a) != 0) return IoctlError("delete subvolume " + where, errno);
  return Status::Ok();
}

Result<Filesystem> Filesystem::Open(const std::string& mount_point) {
  UniqueFd fd(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + mount_point);
  if (!OnBtrfs(fd.get())) return Error(Code::kFailedPrecondition, mount_point + " is not on btrfs");
  btrfs_ioctl_fs_info_args info{};
  if (::ioctl(fd.get(), BTRFS_IOC_FS_INFO, &info) != 0) return IoctlError("filesystem info of " + mount_point, errno);
  return Filesystem(std::move(fd), mount_point, FormatUuid(info.fsid));
}

QuotaMode Filesystem::quota_mode() const {
  // The qgroups directory exists while quotas are on (Linux >= 5.9); its
  // "mode" file (Linux >= 6.7) tells simple quotas from full qgroups.
  struct stat st {};
  if (::stat((SysfsDir() + "/qgroups").c_str(), &st) != 0) return QuotaMode::kOff;
  std::ifstream in(SysfsDir() + "/qgroups/mode");
  std::string mode;
  if (in >> mode) {
    if (mode == "squota") return QuotaMode::kSimple;
    if (mode == "disabled") return QuotaMode::kOff;
  }
  return QuotaMode::kFull;
}

Result<QuotaMode> Filesystem::EnableQuotas(bool simple) {
  if (QuotaMode m = quota_mode(); m != QuotaMode::kOff) return m;
  btrfs_ioctl_quota_ctl_args a{};
  int simple_err = 0;
  if (simple) {
    a.cmd = kEnableSimpleQuota;
    if (::ioctl(fd_.get(), BTRFS_IOC_QUOTA_CTL, &a) == 0) return QuotaMode::kSimple;
    // Kernels before 6.7 refuse the command with EINVAL: classic qgroups.
    simple_err = errno;
  }
  a = {};
  a.cmd = BTRFS_QUOTA_CTL_ENABLE;
  if (::ioctl(fd_.get(), BTRFS_IOC_QUOTA_CTL, &a) != 0) {
    return IoctlError("enable quotas on " + mount_point_, errno);
  }
  if (simple) {
    spdlog::info("btrfs {}: simple quotas refused ({}); using full qgroups", mount_point_, std::strerror(simple_err));
  }
  return QuotaMode::kFull;
}

Result<QgroupUsage> Filesystem::Usage(uint64_t subvolume_id) const {
  QuotaMode mode = quota_mode();
  if (mode == QuotaMode::kOff) return Error(Code::kFailedPrecondition, "quotas are off on " + mount_point_);
  std::string dir = SysfsDir() + "/qgroups/0_" + std::to_string(subvolume_id);
  bool full = mode == QuotaMode::kFull;
  auto used = ReadNumber(dir + (full ? "/exclusive" : "/referenced"));
  if (!used) return Error(Code::kNotFound, "no qgroup 0/" + std::to_string(subvolume_id) + " in " + dir);
  QgroupUsage u;
  u.used = *used;
  // The kernel checks a write against usage plus what is reserved for
  // writes not yet accounted; so does this.
  for (const char* rsv : {"/rsv_data", "/rsv_meta_pertrans", "/rsv_meta_prealloc"}) {
    u.used += ReadNumber(dir + rsv).value_or(0);
  }
  auto flags = ReadNumber(dir + "/limit_flags").value_or(0);
  uint64_t flag = full ? BTRFS_QGROUP_LIMIT_MAX_EXCL : BTRFS_QGROUP_LIMIT_MAX_RFER;
  if ((flags & flag) != 0) u.limit = ReadNumber(dir + (full ? "/max_exclusive" : "/max_referenced")).value_or(0);
  return u;
}

Result<size_t> Filesystem::RemoveStaleQgroups() const {
  if (quota_mode() == QuotaMode::kOff) return size_t{0};
  std::string dir = SysfsDir() + "/qgroups";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error::FromErrno("opendir " + dir);
  std::vector<uint64_t> ids;
  while (auto* e = ::readdir(d)) {
    unsigned long long level = 0, id = 0;
    char tail = 0;
    if (std::sscanf(e->d_name, "%llu_%llu%c", &level, &id, &tail) == 2 && level == 0 && id >= BTRFS_FIRST_FREE_OBJECTID) {
      ids.push_back(id);
    }
  }
  ::closedir(d);
  size_t removed = 0;
  for (uint64_t id : ids) {
    btrfs_ioctl_ino_lookup_args look{};
    look.treeid = id;
    look.objectid = BTRFS_FIRST_FREE_OBJECTID;
    if (::ioctl(fd_.get(), BTRFS_IOC_INO_LOOKUP, &look) == 0 || errno != ENOENT) continue;  // alive (or unknown)
    btrfs_ioctl_qgroup_create_args del{};
    del.create = 0;
    del.qgroupid = id;
    if (::ioctl(fd_.get(), BTRFS_IOC_QGROUP_CREATE, &del) == 0) {
      ++removed;
    } else if (errno != EBUSY && errno != ENOENT) {
      // EBUSY: the deleted subvolume still holds blocks; a later call gets it.
      spdlog::warn("btrfs {}: remove stale qgroup 0/{}: {}", mount_point_, id, std::strerror(errno));
    }
  }
  return removed;
}

Status Filesystem::Sync() const {
  if (::ioctl(fd_.get(), BTRFS_IOC_SYNC, nullptr) != 0) return IoctlError("sync " + mount_point_, errno);
  return Status::Ok();
}

}  // namespace specula::store::btrfs
