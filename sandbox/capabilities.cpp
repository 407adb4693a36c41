#include "sandbox/capabilities.h"

#include <algorithm>
#include <cctype>
#include <fstream>

namespace specula::sandbox {
namespace {

// Index = capability number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
constexpr const char* kCapNames[] = {
    "CHOWN",           "DAC_OVERRIDE",     "DAC_READ_SEARCH", "FOWNER",         "FSETID",
    "KILL",            "SETGID",           "SETUID",          "SETPCAP",        "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE", "NET_BROADCAST",   "NET_ADMIN",       "NET_RAW",        "IPC_LOCK",
    "IPC_OWNER",       "SYS_MODULE",       "SYS_RAWIO",       "SYS_CHROOT",     "SYS_PTRACE",
    "SYS_PACCT",       "SYS_ADMIN",        "SYS_BOOT",        "SYS_NICE",       "SYS_RESOURCE",
    "SYS_TIME",        "SYS_TTY_CONFIG",   "MKNOD",           "LEASE",          "AUDIT_WRITE",
    "AUDIT_CONTROL",   "SETFCAP",          "MAC_OVERRIDE",    "MAC_ADMIN",      "SYSLOG",
    "WAKE_ALARM",      "BLOCK_SUSPEND",    "AUDIT_READ",      "PERFMON",        "BPF",
    "CHECKPOINT_RESTORE",
};
constexpr int kNumCaps = static_cast<int>(sizeof(kCapNames) / sizeof(kCapNames[0]));

}  // namespace

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> kDefault = {
      "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",     "CAP_FSETID",           "CAP_KILL",
      "CAP_SETGID", "CAP_SETUID",       "CAP_SETPCAP",    "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
      "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
      // Not CAP_MKNOD (Docker keeps it): device nodes are refused by the
      // seccomp filter and unusable on nodev mounts; FIFOs need no cap.
  };
  return kDefault;
}

Result<int> CapabilityFromName(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
  if (n.rfind("CAP_", 0) == 0) n = n.substr(4);
  for (int i = 0; i < kNumCaps; ++i) {
    if (n == kCapNames[i]) return i;
  }
  return Error(Code::kInvalidArgument, "unknown capability '" + name + "'");
}

Result<uint64_t> CapabilityMask(const std::vector<std::string>& names) {
  const auto& list = names.empty() ? DefaultCapabilities() : names;
  uint64_t mask = 0;
  for (const auto& n : list) {
    SPECULA_ASSIGN_OR_RETURN(int cap, CapabilityFromName(n));
    mask |= 1ULL << cap;
  }
  return mask;
}

int LastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = -1;
  if (in >> last && last >= 0 && last < 64) return last;
  return kNumCaps - 1;
}

}  // namespace specula::sandbox
