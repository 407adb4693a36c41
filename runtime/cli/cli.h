// The `specula` command line (docs/cli.md): one command per daemon method,
// plus `doctor` and `policy check|explain`, which run locally, and `mcp`,
// the MCP server (runtime/cli/mcp_command.cpp, docs/mcp.md). The binary's
// main (bin/specula_main.cpp) only calls CliMain.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace specula::cli {

// What an extra subcommand sees of the global options, after parsing.
struct CliGlobals {
  std::string socket;
  bool json = false;
};

// Adds a subcommand to `app`; its callback stores the work in `action`.
// This is how commands of libraries above the runtime (`specula bench`, in
// agents/) join the CLI without the runtime depending on them.
using CliExtension =
    std::function<void(CLI::App& app, const CliGlobals& globals, std::function<int()>& action)>;

// Returns the exit status: 0, 1 (the request failed), 2 (usage), 69 (no
// daemon or a kernel feature missing), or for `run` the action's own status.
int CliMain(int argc, char** argv, const std::vector<CliExtension>& extensions = {});

}  // namespace specula::cli
