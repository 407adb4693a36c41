// Where things are: defaults from docs/architecture.md, each overridable.
#pragma once

#include <string>

namespace specula {

inline constexpr const char* kDefaultSocket = "/run/specula/speculad.sock";
inline constexpr const char* kDefaultStateDir = "/var/lib/specula";
// Written by scripts/setup.sh: a wrapper around Debian 13's CRIU in a private
// prefix, or a symlink to a system CRIU >= 4.1 that passed `criu check`.
inline constexpr const char* kDefaultCriu = "/opt/specula/criu/bin/criu";

// The CRIU to run: $SPECULA_CRIU if set, else kDefaultCriu if executable,
// else "criu" (searched in PATH).
std::string CriuPath();

}  // namespace specula
