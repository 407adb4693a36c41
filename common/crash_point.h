// Crash injection for the crash-recovery tests. A process started with
// SPECULA_CRASH_AT=<name> kills itself with SIGKILL when it reaches the
// crash point of that name: exactly what `kill -9` at that moment does (no
// destructor, no flush, no cleanup), but at a chosen step instead of a
// racy one. Unset (always, outside tests) it costs one getenv per point.
// The points are listed in docs/testing.md.
#pragma once

#include <string_view>

namespace specula {

// True when SPECULA_CRASH_AT names `point`.
bool CrashPointArmed(std::string_view point);

// SIGKILLs the whole process if SPECULA_CRASH_AT names `point`.
void CrashPoint(std::string_view point);

}  // namespace specula
