// What a policy can never be allowed to do, whatever it says, and what it
// may do but an operator should be warned about: the rules `policy check`
// and the daemon's session.create share, and the seccomp baseline's names
// (the sandbox compiles the filter from these lists; policies only need to
// know which calls they cannot loosen). Pure: nothing here touches the
// kernel.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"

namespace specula::policy {

// Syscalls the sandbox's seccomp baseline denies outright (names as
// libseccomp knows them). A policy may make them stricter (kill) or defer
// them; `allow` of one is ignored by the sandbox and warned about here.
const std::vector<std::string>& BaselineDeniedSyscalls();
// Syscalls the baseline restricts by argument (clone/unshare with
// CLONE_NEWUSER, mknod(at) of devices, ioctl TIOCSTI/TIOCLINUX; clone3 gets
// ENOSYS). No policy rule changes them.
const std::vector<std::string>& BaselineConditionalSyscalls();

// /proc/sys knobs that read the namespace of whoever reads or writes them
// (hostname, domainname follow the uts namespace of the caller), so a bind
// made from the host's namespaces still lands in the sandbox's own: a lossy
// rule on them would silently isolate instead of reaching the host.
bool BindCannotReachHost(std::string_view host_path);

// Capabilities that hand a branch most of the kernel: `policy check` warns
// when a policy's [sandbox] capabilities lists one.
const std::vector<std::string>& RiskyCapabilities();

// True if lossy path `lossy` (normalised, the last component may be a glob)
// writes through to `dir` or anything below it, or lies below `dir`.
bool LossyPathTouches(std::string_view lossy, std::string_view dir);

// Refuses a policy whose lossy paths reach `dir` (a runtime directory: the
// daemon's state dir). invalid_argument with the offending rule and a hint.
Status CheckLossyAvoids(const Policy& policy, std::string_view dir, std::string_view what);

// Things a valid policy allows that an operator should know are risky
// (`policy check` prints them as warnings, `--json` as "warnings").
std::vector<std::string> PolicyWarnings(const Policy& policy);

}  // namespace specula::policy
