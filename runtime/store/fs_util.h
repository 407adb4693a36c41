// File-tree helpers the store and the core share: removing a tree without
// crossing into mounts, measuring disk usage, short random ids.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace specula::store {

// Removes `path` and everything below it. Never descends into a different
// filesystem (a stale mount under a branch's run dir must not be emptied
// through it): such an entry fails the removal instead. A btrfs subvolume
// (branch volumes and sealed layers on a btrfs store; `path` itself may be
// one) is deleted whole with BTRFS_IOC_SNAP_DESTROY. Missing path: Ok.
Status RemoveTree(const std::string& path);

// Bytes allocated on disk below `path` (st_blocks * 512, hard links once).
Result<uint64_t> DiskUsage(const std::string& path);

// mkdir -p with the given mode for created directories.
Status MakeDirs(const std::string& path, uint32_t mode = 0700);

// "<prefix>" + base32 (lowercase, RFC 4648 alphabet) of 40 random bits:
// e.g. "c3kq7ma2z". Printable, short, and collision-free enough per store
// (ids are also primary keys, so a collision fails loudly, never silently).
Result<std::string> NewId(char prefix);

// Milliseconds since the Unix epoch.
int64_t NowMs();

}  // namespace specula::store
