// The launch rule moved to speculators/launch_rule.h so that the daemon's
// transparent speculation (runtime/speculation) applies the same rule
// without depending on agents; the engine keeps its old names.
#pragma once

#include "speculators/launch_rule.h"

namespace specula::agents {
using speculators::ChooseLaunchCount;
using speculators::CostModel;
using speculators::HitProbability;
}  // namespace specula::agents
