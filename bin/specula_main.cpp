// specula: the command line (docs/cli.md); implemented in runtime/cli, with
// `specula bench` from agents/ added here (runtime/cli must not depend on
// the agents library, which sits above the runtime).
#include "bin/bench_command.h"
#include "runtime/cli/cli.h"

int main(int argc, char** argv) { return specula::cli::CliMain(argc, argv, {specula::cli::BenchExtension()}); }
