// Fuzzes the mount-table parser that finds the cgroup hierarchies
// (ParseCgroupLayout over /proc/self/mountinfo text). Invariants: nothing
// throws or crashes; an accepted layout names absolute mount points only,
// and the parent directories derived from it stay under them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "sandbox/cgroup.h"

using namespace specula::sandbox;
using specula::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto layout = ParseCgroupLayout(input);
  if (!layout.ok()) return 0;
  if (!layout->v2_root.empty()) Check(layout->v2_root.front() == '/');
  for (const auto& [controller, mount] : layout->v1) {
    Check(!controller.empty() && !mount.empty() && mount.front() == '/');
  }
  for (const auto& dir : CgroupParentDirs(*layout, "specula/i-00000000")) {
    Check(dir.size() > 19 && dir.compare(dir.size() - 19, 19, "/specula/i-00000000") == 0);
  }
  return 0;
}
