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

#include <string>
#include <vector>

#include "common/error.h"

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

// Loads the allowlist as a BPF_CGROUP_DEVICE program and attaches it
// (BPF_F_ALLOW_MULTI: a device program the daemon's own cgroup may carry
// still applies too) to the cgroup2 directory `cgroup_dir`. The attachment
// lives as long as the directory, so nothing is held. Returns false (not an
// error) when the kernel has no cgroup BPF (`specula doctor` reports it), an
// error on any other failure.
Result<bool> AttachDeviceFilter(const std::string& cgroup_dir);

// Whether this kernel loads a BPF_CGROUP_DEVICE program (for doctor).
bool DeviceFilterSupported();

}  // namespace specula::sandbox
