// A file tree as text, for the differential tests (the core's,
// tests/runtime_core/differential_test.cpp, and transparent speculation's
// through the daemon, tests/daemon/speculation_differential_test.cpp): two
// trees are the same state exactly when their normalised snapshots are equal.
#pragma once

#include <string>

namespace specula::core::testing {

// One line per entry below `root`, sorted: path, type, mode, owner, then
// content (its first 200 bytes and its size) or link target, and the first
// path sharing its inode (hard links). "<no tree>" if `root` is missing.
std::string Snapshot(const std::string& root);

// Hard-link groups named by their smallest member, independent of walk order.
std::string NormaliseLinks(const std::string& snap);

}  // namespace specula::core::testing
