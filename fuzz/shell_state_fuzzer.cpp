// Fuzzes the two parsers of shell state: what an action's EXIT trap wrote
// inside the sandbox (ParseCapturedState; attacker controlled) and the
// stored form kept in checkpoints (ShellState::Parse). Invariants: nothing
// throws or crashes; an accepted state passes Validate, survives
// Serialize -> Parse unchanged, and makes an action script (the next
// action's input) without NUL bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_check.h"
#include "sandbox/action_script.h"
#include "sandbox/sandbox.h"

using namespace specula::sandbox;
using specula::fuzz::Check;

namespace {

void Accepted(const ShellState& s) {
  Check(s.Validate().ok());
  auto again = ShellState::Parse(s.Serialize());
  Check(again.ok() && *again == s);
  const std::string script = BuildActionScript(s, "true", "/run/specula-state", "t0k");
  Check(script.find('\0') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (auto captured = ParseCapturedState(input, "t0k"); captured.ok()) Accepted(*captured);
  if (auto stored = ShellState::Parse(input); stored.ok()) Accepted(*stored);
  return 0;
}
