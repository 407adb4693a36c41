#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace specula {

bool CrashPointArmed(std::string_view point) {
  const char* want = std::getenv("SPECULA_CRASH_AT");
  return want != nullptr && point == want;
}

void CrashPoint(std::string_view point) {
  if (!CrashPointArmed(point)) return;
  spdlog::critical("crash point {}: SIGKILL (SPECULA_CRASH_AT)", point);
  spdlog::default_logger()->flush();
  ::kill(::getpid(), SIGKILL);
  ::pause();  // SIGKILL cannot be caught: never returns
}

}  // namespace specula
