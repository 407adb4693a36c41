// Cheap, allocation-light analysis of one shell command and its output: what
// the built-in speculator conditions on. No regex; linear scans only (a
// proposal must take microseconds).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "speculators/history.h"

namespace specula::speculators {

struct CommandInfo {
  std::string text;        // trimmed command
  std::string cd_dir;      // D of a leading "cd D && " ("" if none)
  std::string prog;        // normalised program: "python-file", "grep", "write", "sed-n", "git-diff", ...
  std::string kind;        // prog, plus "|"+next program when piped, plus the main operand's extension
  std::vector<std::string> written;  // files it writes new content to: here-document targets, > redirects, tee
  std::vector<std::string> edited;   // files it changes or copies over: sed -i, cp/mv/install targets, touch
  std::vector<std::string> paths;    // path-like words outside here-document bodies, in order
  std::vector<long> numbers;         // integers (>= 1) in the first line, in order
  bool heredoc = false;    // carries a here-document (new content no rule can guess)
  bool read_only = false;  // only reads (cat, grep, find, ls, sed -n, git diff/status/log/show, ...)
};
CommandInfo AnalyzeCommand(std::string_view command);

struct OutputInfo {
  std::string status;                // "ok", "empty", "fail", "nomod" (No module named), "tb" (traceback), "?" (unknown)
  std::vector<std::string> paths;    // path-like words (or ls entries) in order of first appearance
  std::vector<long> line_numbers;    // "N:" / "path:N:" line numbers of grep -n style output
  std::string missing_module;        // from "No module named 'x.y'": "x"
};
// Reads at most the first `max_bytes` of each stream.
OutputInfo AnalyzeOutput(const Step& step, const CommandInfo& command, size_t max_bytes = 4096);

// Strings quoted in a task text (`backticks`, "double quotes"), and
// path-like words in it, unique, in order; at most `max`.
std::vector<std::string> TaskQuotes(std::string_view task, size_t max = 8);

// True for a word that looks like a file path: no spaces, quotes, globs or
// variables, and either a '/' between name characters or a name.ext.
bool PathLike(std::string_view word);

// Whole-word occurrence test used by the template abstraction: the match is
// not preceded or followed by a path character.
bool IsPathChar(char c);

}  // namespace specula::speculators
