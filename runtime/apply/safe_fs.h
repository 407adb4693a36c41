// Filesystem primitives for apply that never follow a symlink they were not
// told to, on top of common/safe_fs.h (openat2 resolution beneath a root,
// path joins): no-follow stat, safe recursive removal, xattr listing, fsync.
// Internal to runtime/apply.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/safe_fs.h"
#include "common/unique_fd.h"

namespace specula::apply {

struct FileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const FileId&) const = default;
  static FileId Of(const struct stat& st) {
    return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  }
};

// Opens a directory given by the caller (trusted path), O_DIRECTORY|O_CLOEXEC.
Result<UniqueFd> OpenTrustedDir(const std::string& path);

// Refuses a directory on a pseudo filesystem (proc, sysfs, cgroup, ...):
// a promote never writes kernel knobs, whatever the upper holds.
Status CheckRegularFs(int dir_fd, const std::string& rel);

// Non-empty, relative, no empty/"."/".." components.
bool IsCleanRelPath(const std::string& rel);

// lstat of one name in dir_fd: nullopt when it does not exist.
Result<std::optional<struct stat>> LstatAt(int dir_fd, const std::string& name);

// Removes `name` in dir_fd and, if it is a directory, everything below it,
// without following symlinks or entering another filesystem (a btrfs
// subvolume below is deleted), at any depth (common/files.h,
// EmptyDirectoryAt). Missing is fine.
Status RemoveTreeAt(int dir_fd, const std::string& name);

Status FsyncFd(int fd, const std::string& what);
// syncfs(2) of the filesystem holding fd (reports writeback errors since 5.8).
Status SyncFs(int fd, const std::string& what);

struct Xattr {
  std::string name;
  std::string value;
};
// All xattrs of an open file or directory (not O_PATH).
Result<std::vector<Xattr>> ReadXattrs(int fd);
// One xattr, nullopt when absent.
Result<std::optional<std::string>> GetXattr(int fd, const char* name);

// Whether xattr `name` of fd is present and equals `want`.
Result<bool> XattrEquals(int fd, const char* name, const std::string& want);

// Renames with renameat2 flags (RENAME_EXCHANGE / RENAME_NOREPLACE / 0).
Status RenameAt(int from_dir, const std::string& from, int to_dir, const std::string& to,
                unsigned flags, const std::string& what);

// Copies all of in_fd into out_fd (copy_file_range, read/write fallback).
Result<uint64_t> CopyData(int in_fd, int out_fd);

// Random hex id (getrandom), for staging names and journal ids.
std::string RandomId();

}  // namespace specula::apply
