#include "common/paths.h"

#include <unistd.h>

#include <cstdlib>

namespace specula {

std::string CriuPath() {
  if (const char* env = std::getenv("SPECULA_CRIU"); env && *env) return env;
  if (::access(kDefaultCriu, X_OK) == 0) return kDefaultCriu;
  return "criu";
}

}  // namespace specula
