// What a speculator conditions on: the session so far. One Step per
// committed command with its result, plus the task text and who the agent
// is. The runtime (transparent speculation) and the agent-side engine both
// build it; nothing here depends on either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace specula::speculators {

struct Step {
  std::string command;      // as committed
  int exit_code = 0;        // -1: unknown
  int signal = 0;           // the signal that killed it, 0 if none
  std::string stdout_text;  // possibly truncated (the speculators read at most a few KiB)
  std::string stderr_text;
  std::string cwd;          // the shell's directory after the command, "" if unknown
  bool has_outcome = true;  // false: only the command is known (e.g. a script without outputs)
};

struct History {
  std::string agent;    // agent / source id (e.g. "swe-mini-deepseek"); "" = unknown agent
  std::string task;     // the instruction the agent was given, "" if unknown
  std::string task_id;  // a stable id of the task, for replaying earlier runs of it; "" = none
  // A long session keeps only its newest steps (the speculators read a
  // few): `first` is the session's index of steps[0], the number of
  // earlier steps no longer kept. A speculator that learns incrementally
  // has seen those already (BuiltinSpeculator::Propose).
  size_t first = 0;
  std::vector<Step> steps;
  size_t end() const { return first + steps.size(); }  // the session's step count
};

// Commands match when equal after trimming ASCII whitespace at both ends
// (the daemon's default rule, DESIGN.md "The contract" 2).
std::string TrimCommand(std::string_view command);

// The key under which earlier runs of the same task are found: task_id, else
// a hash of the task text, else "" (no replay).
std::string TaskKey(const History& history);

// 64-bit FNV-1a, used for stable splits and keys.
uint64_t Fnv1a64(std::string_view s);

}  // namespace specula::speculators
