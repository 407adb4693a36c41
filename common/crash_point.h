// Crash injection for the crash-recovery tests: one mechanism, one
// environment variable. A process started with SPECULA_CRASH_AT=<point>
// dies when it reaches that point, exactly as at a `kill -9` there (no
// destructor, no flush, no cleanup), but at a chosen step instead of a racy
// one. Unset (always, outside tests) a point costs one getenv.
//   - Named points, CrashPoint("checkpoint.before-head"): SIGKILL.
//   - Counted points, CrashCounter("apply.step"): a sequence of numbered
//     steps, chosen as SPECULA_CRASH_AT=apply.step:<N> (1-based). The
//     process _exit(kCrashStepExitStatus)s right after step N, so a test
//     that runs every N in turn can tell the injected crash from a real one.
// The points are listed in docs/testing.md.
#pragma once

#include <cstdint>
#include <string_view>

namespace specula {

// True when SPECULA_CRASH_AT names `point`.
bool CrashPointArmed(std::string_view point);

// SIGKILLs the whole process if SPECULA_CRASH_AT names `point`.
void CrashPoint(std::string_view point);

// The exit status of a crash at a counted point.
inline constexpr int kCrashStepExitStatus = 99;

// The steps of one counted point in one run (an apply, a revert).
class CrashCounter {
 public:
  // Crashes at step `crash_at`; 0 takes N from SPECULA_CRASH_AT=<point>:<N>;
  // negative (or 0 with nothing armed) never crashes.
  CrashCounter(std::string_view point, int crash_at);
  // Called right after every durable action.
  void Step();
  uint64_t steps() const { return steps_; }

 private:
  int crash_at_;
  uint64_t steps_ = 0;
};

}  // namespace specula
