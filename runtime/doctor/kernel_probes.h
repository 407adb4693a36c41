// Real probes of the kernel features a sandbox is built from. Each one uses
// the feature for real in a forked child (child_probe.h): it unshares the
// namespace, mounts the overlay, pivots the root, installs the seccomp
// filter. Ok means the sandbox can do the same; an Error says which step the
// kernel refused and with which errno.
#pragma once

#include <chrono>
#include <string>

#include "common/error.h"

namespace specula::doctor {

enum class NamespaceKind { kPid, kMount, kUts, kIpc, kNet, kCgroup };
inline constexpr NamespaceKind kAllNamespaces[] = {
    NamespaceKind::kPid, NamespaceKind::kMount, NamespaceKind::kUts,
    NamespaceKind::kIpc, NamespaceKind::kNet,   NamespaceKind::kCgroup};
const char* NamespaceName(NamespaceKind kind);  // "pid", "mount", ...

// unshare(2)s the namespace in a child and uses it: pid -> a grandchild is
// pid 1; mount -> / made rprivate; uts -> sethostname; net -> loopback
// brought up; ipc, cgroup -> the unshare itself.
Status ProbeNamespace(NamespaceKind kind, std::chrono::milliseconds timeout);

// In a child's private mount namespace: a tmpfs on a fresh dir under
// scratch_parent, lower/upper/work inside, an overlay mounted on merged/;
// checks a lower file shows through and a write lands in upper/. The dir is
// removed afterwards (the mounts die with the child's namespace).
Status ProbeOverlay(const std::string& scratch_parent, std::chrono::milliseconds timeout);

// In a child's private mount namespace: pivot_root into a fresh tmpfs,
// detach the old root, check / is the new (empty) tmpfs.
Status ProbePivotRoot(const std::string& scratch_parent, std::chrono::milliseconds timeout);

// A child installs a classic seccomp filter (no_new_privs) that fails
// getppid(2) with EXDEV and checks that it does.
Status ProbeSeccompFilter(std::chrono::milliseconds timeout);

// A child installs a filter returning SECCOMP_RET_USER_NOTIF for getppid(2)
// with SECCOMP_FILTER_FLAG_NEW_LISTENER, forks a grandchild that calls it,
// receives the notification on the listener and answers 4242, which the
// grandchild must see as the syscall's result: the deferred-syscall path.
Status ProbeSeccompUserNotif(std::chrono::milliseconds timeout);

}  // namespace specula::doctor
