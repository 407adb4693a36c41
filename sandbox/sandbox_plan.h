// Pure functions from a SandboxSpec to what the kernel is asked to do:
// validation (in the parent, before anything is created), the overlay mount
// options, the in-sandbox mount plan, and the external mounts CRIU must be
// told about. No side effects besides lstat, so they are unit-testable.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "sandbox/child_setup.h"
#include "sandbox/overlay.h"
#include "sandbox/sandbox.h"

namespace specula::sandbox {

// Host devices bind-mounted into the sandbox's /dev.
const std::vector<std::string>& SandboxDevices();

// True for "/a/b" (absolute, no "." / ".." / empty components, no trailing slash).
bool IsNormalAbsolute(const std::string& path);

Status ValidateSpec(const SandboxSpec& spec);

// The sandbox's overlay: its layers topmost first, the base last.
OverlayLayers SandboxOverlayLayers(const SandboxSpec& spec);

// Where a host path appears inside the sandbox ("" when the base does not
// contain it).
std::string InsidePath(const SandboxSpec& spec, const std::string& host_path);

// The kernel files every sandbox gets masked (OCI's default masked paths).
const std::vector<std::string>& MaskedKernelPaths();

// True for a bind target below /proc/sys/: an existing sysctl file of the
// sandbox's own /proc, covered by the host's knob (host_bind.h says why the
// host's). Other targets under /proc are refused.
bool IsProcSysTarget(const std::string& sandbox_path);

// Steps run by init after pivot_root (old root parked on /proc).
// bind_trees[i] is the detached mount (host_bind.h) for spec.binds[i]; a
// missing entry leaves the kAttach step's fd at -1 (plan inspection only).
std::vector<MountStep> BuildMountSteps(const SandboxSpec& spec, const std::vector<int>& bind_trees = {});

struct ExternalMount {
  std::string sandbox_path;  // where it is mounted inside
  std::string key;           // CRIU's name for it
  std::string host_path;     // what it is on the host
};
std::vector<ExternalMount> BuildExternalMounts(const SandboxSpec& spec);

// Where per-action files live inside the sandbox (a private tmpfs).
inline constexpr const char* kIoDirInside = "/run/.specula";

}  // namespace specula::sandbox
