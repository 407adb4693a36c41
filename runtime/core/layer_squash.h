// Squashing a deep stack of sealed layers into one equivalent layer, so
// overlay lookups stay fast when a session has many checkpoints. The merged
// layer shows, over any base, exactly what the stack showed: whiteouts
// (0/0 char devices) and opaque dirs (trusted.overlay.opaque=y) are honoured
// and kept where they still hide something of the base. Files are copied
// (content, mode, owner, times, xattrs; hard links within a layer stay hard
// links), never hard-linked to the old layers, so link counts seen through
// older checkpoints do not change.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace specula::core {

// Merges `layers` (lowest first) into `out_dir`, which must not exist.
Status SquashLayers(const std::vector<std::string>& layers, const std::string& out_dir);

}  // namespace specula::core
