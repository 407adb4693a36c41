// Finding cgroup2 and naming its directories by id: what the eBPF side keys
// everything on (bpf_get_current_cgroup_id() returns the cgroup2 id of a
// task, which is the cgroup directory's kernfs node id).
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace specula::ebpf {

// The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified
// on a v1+v2 hybrid. kUnavailable when neither is cgroup2.
Result<std::string> Cgroup2Root();

// The cgroup2 id of a cgroup2 directory (from its file handle; falls back to
// the inode number, which is the same on 64-bit kernels).
Result<uint64_t> Cgroup2Id(const std::string& dir);

}  // namespace specula::ebpf
