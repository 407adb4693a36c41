// Parsers for the scalar value forms a policy file uses: human sizes
// ("512MiB"), durations ("1m30s"), CPU amounts ("1.5", "1500m"), errno names,
// capability names, CIDR[:port] endpoints and policy paths. Each returns the
// value or a message saying what was expected (the caller adds file:line:col
// and the key), so the validator can collect every error in one pass.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "policies/policy.h"

namespace specula::policy {

// A parsed value, or the reason it was rejected ("expected ..., got ...").
template <typename T>
struct Parsed {
  std::variant<T, std::string> v;
  bool ok() const { return v.index() == 0; }
  const T& value() const { return std::get<0>(v); }
  const std::string& why() const { return std::get<1>(v); }
};

// "512MiB", "1.5GiB", "4096", "10M" (single letters K/M/G/T are binary, as in
// cgroup files; kB/MB/GB/TB are decimal). Rejects overflow and negatives.
Parsed<uint64_t> ParseSize(std::string_view text);
// "30s", "500ms", "1m30s", "2h". At least one unit; result in milliseconds.
Parsed<uint64_t> ParseDurationMs(std::string_view text);
// "EPERM" or "13" -> 13. Only errno values the C library can name.
Parsed<int> ParseErrno(std::string_view text);
// "CAP_CHOWN" (also accepts "chown"), returns the canonical upper-case form.
Parsed<std::string> ParseCapability(std::string_view text);
// "10.0.0.0/8:443", "192.168.1.5" (= /32, any port), "[fd00::/8]:53",
// "::1/128" (IPv6 with a port needs brackets). Host bits must be zero.
Parsed<NetEndpoint> ParseEndpoint(std::string_view text);

// Checks a policy path: absolute, no "." or ".." components; collapses
// repeated slashes and drops a trailing slash. `allow_glob` permits glob
// characters (* ? [) in the last component only (lossy rules).
Parsed<std::string> NormalisePolicyPath(std::string_view text, bool allow_glob);
// True if `path` equals `dir` or lies below it (both normalised).
bool PathIsWithin(std::string_view path, std::string_view dir);
// True if a lossy tag is well formed: 1-64 of [A-Za-z0-9_.:-].
bool ValidTag(std::string_view tag);
// "text" in double quotes for a message, with quotes and backslashes escaped
// and control characters shown as '?' (a message must not garble a terminal).
std::string QuoteValue(std::string_view s);
// Edit distance, for "did you mean" suggestions on unknown keys.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace specula::policy
