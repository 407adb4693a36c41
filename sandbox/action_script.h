// The bash program one action runs (`bash -c ActionShellProgram(path)`,
// which sources BuildActionScript's file at path): re-create the ShellState,
// run the command with eval, and, from an EXIT trap (so `exit N` and
// errexit still get there), write the new state to a file. The state file uses marker
// lines carrying a per-action random token so that the command's own output
// cannot be mistaken for state, and a final "end" marker shows the capture
// completed.
#pragma once

#include <string>

#include "common/error.h"
#include "sandbox/sandbox.h"

namespace specula::sandbox {

// 'text' quoted for bash (single quotes, ' as '\'').
std::string ShellQuote(const std::string& text);

// The file an action sources first: EXIT trap, cwd, umask, variables, and
// the functions, aliases, options and command as variables for
// ActionShellProgram. state.Validate() must have passed. state_path is the
// path inside the sandbox.
std::string BuildActionScript(const ShellState& state, const std::string& command,
                              const std::string& state_path, const std::string& token);

// The program of `bash --noprofile --norc -c PROGRAM`: sources script_path
// (BuildActionScript's output), then runs the command the way `bash -c`
// would, so error messages read "bash: foo: command not found". Depends on
// script_path only, so it is the same for every action of every sandbox.
std::string ActionShellProgram(const std::string& script_path);

// Parses what the EXIT trap wrote. kDataLoss if incomplete or malformed.
Result<ShellState> ParseCapturedState(const std::string& text, const std::string& token);

}  // namespace specula::sandbox
