// Fuzzes the trajectory JSONL parser (agents/trajectory.h), which reads
// whatever directory a user gives `specula-trajectories`. Invariants:
// nothing throws or crashes, and an accepted trajectory serialises to text
// that parses back to the same serialisation.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "agents/trajectory.h"

using namespace specula::agents;
using specula::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto t = ParseTrajectory(input);
  if (!t.ok()) return 0;
  const std::string text = SerializeTrajectory(*t);
  auto again = ParseTrajectory(text);
  Check(again.ok() && SerializeTrajectory(*again) == text);
  return 0;
}
