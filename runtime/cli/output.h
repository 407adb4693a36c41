// How the CLI prints: aligned tables for people, one-line JSON for scripts,
// and errors as docs/error-model.md says (message, hint, exit status).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <exception>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace specula::cli {

using Json = nlohmann::json;

inline constexpr int kExitError = 1;        // the request failed
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnavailable = 69; // EX_UNAVAILABLE: no daemon, or a kernel feature missing

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void Row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  // Columns padded to their widest cell; the last column is not padded.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

int ExitCodeFor(const Error& error);
// Prints the error (text to err, or {"error":{...}} to out with json) and
// returns the exit status.
int ReportError(const Error& error, bool json, std::ostream& out, std::ostream& err);

// An exception that reached a command's boundary (std::filesystem, CLI11,
// nlohmann::json, std::stoi) as an Error of the error model: a filesystem
// error keeps its errno and the code derived from it, bad_alloc is
// resource_exhausted, invalid_argument/out_of_range (stoi) and JSON type
// errors are invalid_argument; anything else is internal (a bug).
Error ErrorFromException(const std::exception& e);

// "1.2s", "340ms", "2m05s".
std::string FormatDuration(int64_t ms);
// "12.0 KiB"
std::string FormatBytes(uint64_t bytes);
// First line of text, cut to width with "..." (for table cells).
std::string OneLine(std::string_view text, size_t width);

}  // namespace specula::cli
