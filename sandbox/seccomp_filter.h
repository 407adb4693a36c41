// The sandbox's seccomp filter: a fixed baseline (not removable by policy)
// plus the policy's per-syscall rules, compiled with libseccomp in the parent
// into a classic BPF program that a child installs with one seccomp(2) call
// (no allocation after fork). Rules look only at syscall numbers and register
// arguments, never at memory a pointer refers to (that would be racy).
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"

namespace specula::sandbox {

// errno returned by baseline denials; non-native ABIs and clone3 get ENOSYS
// (clone3's flags live in memory, so it is refused in a way that makes libc
// fall back to clone(2), whose flags are a register).
inline constexpr int kBaselineErrno = 1;  // EPERM

struct SeccompProgram {
  std::vector<sock_filter> filter;
  bool has_defer = false;  // install with SECCOMP_FILTER_FLAG_NEW_LISTENER
  sock_fprog fprog() const {
    return sock_fprog{static_cast<unsigned short>(filter.size()),
                      const_cast<sock_filter*>(filter.data())};
  }
};

// Syscalls the baseline denies outright (names as libseccomp knows them).
const std::vector<std::string>& BaselineDeniedSyscalls();
// Syscalls the baseline restricts by argument (clone/unshare with
// CLONE_NEWUSER, mknod(at) of devices, ioctl TIOCSTI/TIOCLINUX).
const std::vector<std::string>& BaselineConditionalSyscalls();

// Validates the rules (known names, errno range, no duplicates) and compiles
// baseline + rules. The baseline is never loosened: for a syscall it denies
// outright, a policy may only choose kill or defer instead (a deferred call
// still never runs in an unpromoted branch); rules that would allow a
// baseline syscall, or touch one restricted by argument, are ignored.
//
// deny_privilege_bits: also refuse (EPERM) every chmod and file creation that
// sets S_ISUID or S_ISGID, and openat2 (its mode is in memory: ENOSYS, so
// callers fall back to openat). For sandboxes with a writable host bind, whose
// files the host runs as they are (LinuxSandbox::Prepare).
Result<SeccompProgram> BuildSeccompProgram(const std::vector<policy::SyscallRule>& rules,
                                           bool deny_privilege_bits = false);

// Native syscall number -> name ("?" + number if unknown).
std::string SyscallName(int nr);

}  // namespace specula::sandbox
