// Wall-clock time as the runtime records it: milliseconds since the Unix
// epoch in the state database, RFC 3339 UTC strings on the wire and in logs.
#pragma once

#include <cstdint>
#include <string>

namespace specula {

// Milliseconds since the Unix epoch (system clock).
int64_t NowMs();
// Nanoseconds since the Unix epoch: orders events milliseconds cannot tell apart.
int64_t NowUnixNs();

// "2026-11-28T16:41:46.123Z" for a time in Unix milliseconds.
std::string Rfc3339(int64_t unix_ms);

}  // namespace specula
