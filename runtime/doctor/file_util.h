// Small-file reads and atomic writes for the doctor (kernel text files under
// /proc and /sys, the breakpoint cache), through O_CLOEXEC fds.
#pragma once

#include <string>

#include "common/error.h"

namespace specula::doctor {

// The whole file, up to max_bytes (proc files report size 0, so read to EOF).
Result<std::string> ReadTextFile(const std::string& path, size_t max_bytes = 1 << 20);

// Writes `data` to a temp file next to `path` and renames it over `path`, so
// a concurrent reader sees the old or the new content, never half of it.
// Creates the parent directory (mode 0755) if needed.
Status WriteFileAtomic(const std::string& path, const std::string& data);

}  // namespace specula::doctor
