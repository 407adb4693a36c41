// File operations of the lossy journal, each resolved beneath a root
// directory fd without following any symlink (common/safe_fs.h OpenBeneath):
// a branch that replaced a lossy path with a symlink cannot make the journal
// read or restore another file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/safe_fs.h"
#include "common/unique_fd.h"
#include "runtime/lossy/lossy_journal.h"

namespace specula::lossy::internal {

// What a path (file or directory tree) holds now. Regular files are read up
// to `file_cap` bytes each; bigger ones keep only size and mtime. Symlinks,
// devices and other non-regular files below a directory are not followed or
// read. Missing path: an empty vector.
struct SnapshotLimits {
  uint64_t file_cap;
  size_t max_files;
};
Result<std::vector<LossyJournal::FileImage>> Snapshot(int root, const std::string& rel,
                                                      const SnapshotLimits& limits);

// True when the two images differ in what the journal can observe.
bool Differs(const LossyJournal::FileImage& a, const LossyJournal::FileImage& b);
// "60 -> 10" for short printable contents, "mode 644 -> 600", "content changed".
std::string DescribeChange(const LossyJournal::FileImage& before, const LossyJournal::FileImage& after);

// Path relative to the root: "/proc/sys/x" -> "proc/sys/x".
std::string RelOf(const std::string& absolute);

}  // namespace specula::lossy::internal
