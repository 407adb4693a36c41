#include "common/version.h"

namespace specula {

const char* Version() { return SPECULA_VERSION; }

}  // namespace specula
