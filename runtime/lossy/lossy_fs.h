// File operations of the lossy journal, each resolved beneath a root
// directory fd without following any symlink (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a branch that replaced a lossy
// path with a symlink cannot make the journal read or restore another file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/lossy/lossy_journal.h"

namespace specula::lossy::internal {

// openat2(root, rel) with `flags` (O_CLOEXEC added); rel "" is the root.
Result<UniqueFd> OpenBeneath(int root, const std::string& rel, uint64_t flags, mode_t mode = 0);

// Reads to EOF (works for /proc files, whose size is 0). If more than `cap`
// bytes are available, returns what was read with *over = true.
Result<std::string> ReadAll(int fd, uint64_t cap, bool* over);
// Writes everything in as few write() calls as the kernel allows (a sysctl
// must receive its value in one write, which a short string always is).
Status WriteAll(int fd, const std::string& data);

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
// "dir" + "/" + rel, or just dir when rel is empty.
std::string JoinRel(const std::string& dir, const std::string& rel);

}  // namespace specula::lossy::internal
