// Real probes of the kernel features a sandbox is built from. Each one uses
// the feature for real in a forked child (child_probe.h): it unshares the
// namespace, mounts the overlay, pivots the root, installs the seccomp
// filter. Ok means the sandbox can do the same; an Error says which step the
// kernel refused and with which errno.
#pragma once

#include <chrono>
#include <cstdint>
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

// The id range every sandbox's user namespace maps (sandbox/userns.h
// kDefaultHostIdBase, kDefaultIdCount: ids 0..65535 inside are host ids
// 0x6FFF0000..0x7000FFFF). Restated here because the doctor does not link
// the sandbox library; doctor_unit_test keeps the two equal by value.
inline constexpr uint32_t kProbeHostIdBase = 0x6FFF0000;
inline constexpr uint32_t kProbeIdCount = 65536;

// A grandchild enters a new user namespace (unshare(CLONE_NEWUSER)); the
// child, in the initial namespace, writes its uid_map and gid_map with
// "0 0x6FFF0000 65536" and opens its namespace, as the sandbox does.
Status ProbeUserNamespace(std::chrono::milliseconds timeout);

// The same namespace, then in a private mount namespace: a lower dir and an
// upper+work dir under scratch_parent are cloned (open_tree), idmapped
// (mount_setattr MOUNT_ATTR_IDMAP) and attached (move_mount), an overlay is
// mounted on them, and a file root owns on disk must show as owned by host
// uid/gid 0x6FFF0000 through it.
Status ProbeIdmappedOverlay(const std::string& scratch_parent, std::chrono::milliseconds timeout);

}  // namespace specula::doctor
