// Sandboxes die with the daemon that made them.
//
// Every sandbox of one daemon lives in one cgroup2 subtree (its instance
// parent, "specula/i-<hash of the state dir>"). A watch process, forked from
// the daemon before it starts any thread, holds a pidfd of the daemon and
// an open cgroup.kill of that subtree, and nothing else; when the daemon
// exits, however it exits (kill -9 included), the watch writes "1" to
// cgroup.kill and the kernel kills every process of every sandbox, those
// forking at that moment included. Crash recovery at the next start
// removes what is left (mounts, cgroup dirs, upper dirs).
//
// Why not PR_SET_PDEATHSIG on init: it fires when the *thread* that forked
// init exits (workers come and go), and CRIU-restored inits are children of
// CRIU, not of the daemon.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/error.h"

namespace specula::sandbox {

// "specula/i-<8 hex digits>": the cgroup parent (relative to each
// hierarchy's root) of the sandboxes of the daemon using `state_dir`.
// Stable across restarts, distinct for distinct state dirs.
std::string InstanceCgroupParent(const std::string& state_dir);

// Creates the cgroup2 directory of `cgroup_parent` and forks the watch.
// Call before any thread exists, holding the state dir's lock (a POSIX
// record lock on `lock_path`). Returns the watch's pid (the caller never
// needs to wait for it: it outlives the caller by design).
//
// After the kill the watch waits for the subtree to empty and removes it
// from every hierarchy (cgroup2 and each v1 one), so no daemon, stopped or
// killed, leaves cgroup directories behind. It does so only if it can take
// the state dir's lock: a daemon started meanwhile owns the subtree, and
// while the watch holds the lock a starting daemon waits for it.
Result<pid_t> StartSandboxWatch(const std::string& cgroup_parent, const std::string& lock_path);

}  // namespace specula::sandbox
