// The runtime's own files and directory trees, by trusted path (its state
// dir, image and layer dirs, /run/specula): mkdir -p, removing a tree
// without crossing into mounts, disk usage, whole-file reads and atomic
// replacement. Paths that a sandbox or a policy could have redirected go
// through common/safe_fs.h instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace specula {

// mkdir -p with the given mode for created directories.
Status MakeDirs(const std::string& path, uint32_t mode = 0700);

// Removes `path` and everything below it. Never descends into a different
// filesystem (a stale mount under a branch's run dir must not be emptied
// through it): such an entry fails the removal instead. A btrfs subvolume
// (branch volumes and sealed layers on a btrfs store; `path` itself may be
// one) is deleted whole with BTRFS_IOC_SNAP_DESTROY. Missing path: Ok.
// Works at any depth (iterative, at most 64 directories open: a command can
// make a tree far deeper than PATH_MAX), and never follows a symlink.
Status RemoveTree(const std::string& path);

// Removes everything inside the directory open at `dir_fd` (not consumed),
// the way RemoveTree does below its path: same device only (btrfs
// subvolumes deleted), no symlink followed, any depth. `where` names it in
// messages.
Status EmptyDirectoryAt(int dir_fd, const std::string& where);

// Whether `name` in the directory open at `dirfd` is the root of a btrfs
// subvolume on that same mount (inode 256, not a mount point of its own):
// a device of its own, but no mount, so RemoveTree deletes it whole.
bool IsBtrfsSubvolumeRoot(int dirfd, const char* name);

// Bytes allocated on disk below `path` (st_blocks * 512, hard links once),
// on path's own device only. Safe on a live branch's tree: walks by fds, never
// follows a symlink (a directory swapped for one mid-walk is skipped), any
// depth with a bounded number of fds.
Result<uint64_t> DiskUsage(const std::string& path);

// The whole file, up to max_bytes (proc files report size 0, so read to EOF).
Result<std::string> ReadTextFile(const std::string& path, size_t max_bytes = 1 << 20);

// Writes `data` to a temp file next to `path` and renames it over `path`, so
// a concurrent reader sees the old or the new content, never half of it.
// Creates the parent directory (mode 0755) if needed.
Status WriteFileAtomic(const std::string& path, std::string_view data);

}  // namespace specula
