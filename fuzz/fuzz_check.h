// The one assertion every fuzz target uses for its invariants: aborts, so
// libFuzzer records the input as a crash (assert() would vanish in release).
#pragma once

#include <cstdlib>

namespace specula::fuzz {

inline void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace specula::fuzz
