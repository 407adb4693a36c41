// What a session's base may be: a plain directory tree on a real
// filesystem, outside the daemon's own state. A base is what every branch
// sees as its root and what a base-target promote writes to, so a kernel
// filesystem (/proc, /sys, /dev, cgroup, debugfs...), a file, a path through
// a symlink (which could be swapped between commits) or the runtime's own
// data is refused at session.create.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace specula::core {

// invalid_argument (with a hint) unless `base` is an absolute, normalised
// path of a directory reached without any symlink, on a filesystem that is
// not a kernel pseudo filesystem, and neither inside `state_dir` nor it.
Status CheckSessionBase(const std::string& base, const std::string& state_dir);

// True for the filesystem types a base may not be on ("proc", "sysfs",
// "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
// "bpf", "configfs", "efivarfs", "pstore", "fusectl", "binfmt_misc",
// "mqueue", "devpts", "hugetlbfs", "nsfs"). Pure, for the unit test.
bool IsKernelFilesystem(std::string_view fstype);

// The filesystem type of mount `mnt_id` in a /proc/self/mountinfo text,
// or "" if it is not listed. Pure.
std::string MountFsType(std::string_view mountinfo, uint64_t mnt_id);

}  // namespace specula::core
