// Runs one kernel-feature probe in a forked child, with a timeout, so that
// whatever the probe changes (namespaces, mounts, root, seccomp filters) dies
// with the child and never touches the caller. The doctor's probes are real
// uses of a feature, not reads of a config.
#pragma once

#include <chrono>

#include "common/error.h"

namespace specula::doctor {

// The probe body, run in the child after fork. It must be async-signal-safe
// (no allocation, no locks): everything it needs is prepared by the parent in
// *arg. It reports a failure with ChildFail(report_fd, "step", errno), which
// _exits; returning means success.
using ChildProbeFn = void (*)(int report_fd, const void* arg);

// Forks, runs fn in the child (in its own process group) and waits for it at
// most `timeout`. Ok if fn returned; the child's report as an Error
// ("<what>: <step>: <strerror>") if it failed; kDeadlineExceeded (the child's
// group killed) if it did not finish in time.
Status RunInChild(const char* what, ChildProbeFn fn, const void* arg,
                  std::chrono::milliseconds timeout);

}  // namespace specula::doctor
