// `specula mcp`: the Model Context Protocol server on stdio (docs/mcp.md).
#pragma once

#include "runtime/cli/cli.h"

namespace specula::cli {

// Adds the `mcp` subcommand (a CliExtension of the runtime's own).
void AddMcpCommand(CLI::App& app, const CliGlobals& globals, std::function<int()>& action);

}  // namespace specula::cli
