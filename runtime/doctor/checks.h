// The doctor's checks, grouped by what they serve. Each turns probe results
// into DoctorChecks with a status, a one-line reason and an action; the
// wording of every check is documented in docs/doctor.md. Internal to
// runtime/doctor.
#pragma once

#include <string>
#include <vector>

#include "runtime/doctor/doctor.h"

namespace specula::doctor {

// Sandbox prerequisites: kernel version, the six namespaces, overlayfs,
// pivot_root, cgroup layout and controllers, seccomp filter and user notify.
std::vector<DoctorCheck> SandboxChecks(const DoctorOptions& options);

// eBPF (vmlinux BTF and each program type) and CRIU (found + version,
// `criu check`, hardware breakpoints, /run on tmpfs for its kdat cache).
std::vector<DoctorCheck> EbpfChecks();
std::vector<DoctorCheck> CriuChecks(const DoctorOptions& options);
// A real `criu dump` of a tree in which one process changed uid (issue 16,
// loss 2); `usable`: CriuFoundCheck found a CRIU to run. criu_dump_probe.cpp.
DoctorCheck UidChangedDumpCheck(const DoctorOptions& options, const std::string& criu, bool usable);

// The store's filesystem (options.state_dir) and whether disk limits are
// enforced there; where none is mounted, a real btrfs quota probe.
std::vector<DoctorCheck> StoreChecks(const DoctorOptions& options);

// Builders, so that every check states required-ness and action the same way.
DoctorCheck Ok(std::string name, std::string reason, bool required = true);
DoctorCheck Degraded(std::string name, std::string reason, std::string action,
                     bool required = false);
DoctorCheck Missing(std::string name, std::string reason, std::string action,
                    bool required = true);

}  // namespace specula::doctor
