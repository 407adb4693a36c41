// The bash program one action runs: re-create the ShellState, run the
// command with eval, and, from an EXIT trap (so `exit N` and errexit still
// get there), write the new state to a file. The state file uses marker
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

// state.Validate() must have passed. state_path is the path inside the sandbox.
std::string BuildActionScript(const ShellState& state, const std::string& command,
                              const std::string& state_path, const std::string& token);

// Parses what the EXIT trap wrote. kDataLoss if incomplete or malformed.
Result<ShellState> ParseCapturedState(const std::string& text, const std::string& token);

}  // namespace specula::sandbox
