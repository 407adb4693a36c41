#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace specula {
namespace {

const char* Armed() { return std::getenv("SPECULA_CRASH_AT"); }

// N of SPECULA_CRASH_AT=<point>:<N>, or -1.
int StepFromEnv(std::string_view point) {
  const char* v = Armed();
  if (v == nullptr) return -1;
  std::string_view want(v);
  if (want.size() <= point.size() + 1 || want.substr(0, point.size()) != point || want[point.size()] != ':') {
    return -1;
  }
  std::string digits(want.substr(point.size() + 1));
  char* end = nullptr;
  long n = std::strtol(digits.c_str(), &end, 10);
  if (*end != '\0' || n <= 0 || n > 1'000'000'000) return -1;
  return static_cast<int>(n);
}

}  // namespace

bool CrashPointArmed(std::string_view point) {
  const char* want = Armed();
  return want != nullptr && point == want;
}

void CrashPoint(std::string_view point) {
  if (!CrashPointArmed(point)) return;
  spdlog::critical("crash point {}: SIGKILL (SPECULA_CRASH_AT)", point);
  spdlog::default_logger()->flush();
  ::kill(::getpid(), SIGKILL);
  ::pause();  // SIGKILL cannot be caught: never returns
}

CrashCounter::CrashCounter(std::string_view point, int crash_at)
    : crash_at_(crash_at != 0 ? crash_at : StepFromEnv(point)) {}

void CrashCounter::Step() {
  ++steps_;
  if (crash_at_ > 0 && steps_ == static_cast<uint64_t>(crash_at_)) ::_exit(kCrashStepExitStatus);
}

}  // namespace specula
