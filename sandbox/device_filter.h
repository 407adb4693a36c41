// The device allowlist of every sandbox (issue 12 "Devices"): only the
// character devices the sandbox's /dev provides (null, zero, full, random,
// urandom, tty, ptmx and its pts), read and write, and no mknod of any
// device. Two enforcements, because the kernel consults both: the cgroup v1
// devices controller where it is mounted (cgroup.cpp writes these rules),
// and a BPF_CGROUP_DEVICE program on the sandbox's cgroup2 directory (what
// a pure cgroup2 host has). The program is a handful of raw instructions
// loaded here: sandbox/ must not link ebpf/ (docs/architecture.md), and a
// device filter needs no maps, BTF or CO-RE.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::sandbox {

struct DeviceRule {
  char type = 'c';  // 'c' or 'b'
  int major = 0;
  int minor = -1;   // -1: any minor
  // "c 1:3 rw": a line for devices.allow.
  std::string V1Line() const;
};

// The sandbox's devices, each allowed "rw" (never "m").
const std::vector<DeviceRule>& SandboxDeviceRules();

// The allowlist loaded once as a BPF_CGROUP_DEVICE program. Loading runs
// the kernel's verifier (about 0.3 ms here, half of a sandbox's cgroup
// setup), so the runtime loads one per daemon and attaches it to every
// sandbox (SandboxSpec.device_filter); attaching is a tenth of that. The fd
// is close-on-exec (every bpf fd is) and, like every runtime fd, closed in
// a sandbox's init before anything of the sandbox runs.
class DeviceFilterProgram {
 public:
  // supported() is false (not an error) when the kernel has no cgroup BPF
  // (`specula doctor` reports it); an error on any other failure.
  static Result<std::shared_ptr<const DeviceFilterProgram>> Load();
  bool supported() const { return static_cast<bool>(prog_); }
  // Attaches the program (BPF_F_ALLOW_MULTI: a device program the daemon's
  // own cgroup may carry still applies too) to the cgroup2 directory
  // `cgroup_dir`. The attachment lives as long as the directory, so nothing
  // is held. Returns false when unsupported.
  Result<bool> Attach(const std::string& cgroup_dir) const;

 private:
  explicit DeviceFilterProgram(UniqueFd prog) : prog_(std::move(prog)) {}
  UniqueFd prog_;
};


}  // namespace specula::sandbox
