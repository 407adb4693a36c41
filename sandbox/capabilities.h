// Capability names and the sandbox's built-in bounding set. Parsed in the
// parent into a bit mask, so the child only has to apply numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace specula::sandbox {

// The bounding set used when the policy lists no capabilities: what a
// package manager or build needs as root, without anything that reaches
// past the sandbox (no SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, ...).
// Same spirit as the OCI runtimes' default set.
const std::vector<std::string>& DefaultCapabilities();

// "CAP_CHOWN" (or "chown") -> 0. Unknown names are kInvalidArgument.
Result<int> CapabilityFromName(const std::string& name);

// Mask (bit n = capability n) for `names`, or the default set when empty.
Result<uint64_t> CapabilityMask(const std::vector<std::string>& names);

// Highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap).
int LastCapability();

}  // namespace specula::sandbox
