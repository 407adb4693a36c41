// Before a sandbox's overlay is unmounted: links up every alias of a file
// that overlayfs' index (index=on) tracks, so the sealed upper dir keeps
// hard links that were split across layers (docs/sandbox.md "CRIU").
#pragma once

#include <string>

#include "common/error.h"
#include "sandbox/sandbox.h"

namespace specula::sandbox {

Status LinkUpIndexedAliases(const SandboxSpec& spec, const std::string& merged);

}  // namespace specula::sandbox
