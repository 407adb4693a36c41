// `specula bench` (agents/bench.h) as a CLI extension: the agents library sits
// above the runtime, so the binary, not the runtime's CLI, wires it in.
#pragma once

#include "runtime/cli/cli.h"

namespace specula::cli {

CliExtension BenchExtension();

}  // namespace specula::cli
