// Checks of what a sandbox is built from (sandbox/sandbox.h): every one
// really uses the feature (kernel_probes.h) or really creates a cgroup.
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <string>

#include <spdlog/spdlog.h>

#include "common/files.h"
#include "runtime/doctor/checks.h"
#include "runtime/doctor/kernel_probes.h"

namespace specula::doctor {
namespace {

// Oldest kernel with everything the code uses: seccomp user notification
// with CONTINUE (5.5), openat2 (5.6), the BPF ring buffer (5.8) and
// close_range's CLOSE_RANGE_CLOEXEC (5.11, which common/spawn relies on).
constexpr int kMinMajor = 5, kMinMinor = 11;

// Per namespace: the unshare flag, what the probe did with it, the kernel
// option that provides it.
struct NamespaceText {
  const char* flag;
  const char* used;
  const char* config;
};
NamespaceText TextFor(NamespaceKind kind) {
  switch (kind) {
    case NamespaceKind::kPid: return {"CLONE_NEWPID", "a grandchild ran as pid 1", "CONFIG_PID_NS"};
    case NamespaceKind::kMount: return {"CLONE_NEWNS", "/ made rprivate", "mount namespaces"};
    case NamespaceKind::kUts: return {"CLONE_NEWUTS", "hostname set", "CONFIG_UTS_NS"};
    case NamespaceKind::kIpc: return {"CLONE_NEWIPC", "unshared", "CONFIG_IPC_NS"};
    case NamespaceKind::kNet: return {"CLONE_NEWNET", "loopback brought up", "CONFIG_NET_NS"};
    case NamespaceKind::kCgroup: return {"CLONE_NEWCGROUP", "unshared", "CONFIG_CGROUPS"};
  }
  return {"?", "?", "?"};
}

// Times a check and stamps its duration.
template <typename F>
DoctorCheck Timed(F&& f) {
  auto start = std::chrono::steady_clock::now();
  DoctorCheck c = f();
  c.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return c;
}

DoctorCheck KernelCheck() {
  utsname u{};
  if (::uname(&u) != 0) {
    return Missing("kernel", "uname failed", "nothing specula can do; report a bug");
  }
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) {
    return Missing("kernel", std::string("unparsable kernel release ") + u.release,
                   "use Linux >= 5.11");
  }
  std::string seen = std::string("Linux ") + u.release + " (needs >= " +
                     std::to_string(kMinMajor) + "." + std::to_string(kMinMinor) + ")";
  if (major > kMinMajor || (major == kMinMajor && minor >= kMinMinor)) return Ok("kernel", seen);
  return Missing("kernel", seen, "upgrade to Linux >= 5.11");
}

// A probe's Status as a check: ok, or missing with the failing step.
DoctorCheck FromProbe(std::string name, const Status& st, std::string ok_reason,
                      std::string action) {
  if (st.ok()) return Ok(std::move(name), std::move(ok_reason));
  // EPERM is nearly always "not root" (or a container's seccomp profile),
  // whatever the feature: say that first.
  if (st.error().sys_errno() == EPERM && action.rfind("run as root", 0) != 0) {
    action = "run as root (CAP_SYS_ADMIN), not in a container that forbids it; else " + action;
  }
  return Missing(std::move(name), st.error().message(), std::move(action));
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) {
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

std::string Join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "none" : out;
}

struct CgroupLayout {
  std::string v2_mount;              // where cgroup2 is mounted ("" if nowhere)
  std::set<std::string> v1;          // controllers on v1 hierarchies
  std::set<std::string> v2;          // controllers in the cgroup2 root's cgroup.controllers
};

CgroupLayout ReadCgroupLayout() {
  CgroupLayout l;
  // Controller names the kernel knows, to pick them out of v1 mount options.
  std::set<std::string> known;
  if (auto cg = ReadTextFile("/proc/cgroups"); cg.ok()) {
    for (const auto& line : Split(*cg, '\n')) {
      if (line[0] == '#') continue;
      std::istringstream f(line);
      std::string name;
      f >> name;
      known.insert(name);
    }
  }
  std::vector<std::string> v2_mounts;
  if (auto mounts = ReadTextFile("/proc/self/mounts"); mounts.ok()) {
    for (const auto& line : Split(*mounts, '\n')) {
      std::istringstream f(line);
      std::string dev, dir, type, opts;
      f >> dev >> dir >> type >> opts;
      if (type == "cgroup2") v2_mounts.push_back(dir);
      if (type == "cgroup") {
        for (const auto& o : Split(opts, ',')) {
          if (known.count(o)) l.v1.insert(o);
        }
      }
    }
  }
  // The standard places first: pure v2, then the hybrid's unified tree.
  for (const char* place : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (std::find(v2_mounts.begin(), v2_mounts.end(), place) != v2_mounts.end()) {
      l.v2_mount = place;
      break;
    }
  }
  if (l.v2_mount.empty() && !v2_mounts.empty()) l.v2_mount = v2_mounts.front();
  if (!l.v2_mount.empty()) {
    if (auto c = ReadTextFile(l.v2_mount + "/cgroup.controllers"); c.ok()) {
      for (const auto& name : Split(*c, ' ')) {
        std::string n = name;
        while (!n.empty() && n.back() == '\n') n.pop_back();
        if (!n.empty()) l.v2.insert(n);
      }
    }
  }
  return l;
}

DoctorCheck CgroupLayoutCheck(const CgroupLayout& l) {
  const char* name = "cgroup.layout";
  if (l.v2_mount.empty()) {
    return Missing(name, "no cgroup2 mount (v1 only): eBPF cgroup hooks need cgroup2",
                   "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot "
                   "with systemd.unified_cgroup_hierarchy=1");
  }
  // Really create (and remove) a cgroup: branches each get one.
  std::string probe = l.v2_mount + "/specula-doctor-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0) {
    return Missing(name, Error::FromErrno("mkdir " + probe).message(),
                   "run as root with a writable cgroup2 tree (not read-only in a container)");
  }
  if (::rmdir(probe.c_str()) != 0) {
    spdlog::warn("doctor: could not remove probe cgroup {}: {}", probe, std::strerror(errno));
  }
  std::string kind;
  if (l.v2_mount == "/sys/fs/cgroup") {
    kind = "pure cgroup2 at /sys/fs/cgroup";
  } else if (l.v2_mount == "/sys/fs/cgroup/unified") {
    kind = "hybrid: v1 controllers under /sys/fs/cgroup/<ctrl>, cgroup2 at "
           "/sys/fs/cgroup/unified";
  } else {
    return Degraded(name, "cgroup2 only at " + l.v2_mount + " (not a standard place)",
                    "mount cgroup2 at /sys/fs/cgroup (or /sys/fs/cgroup/unified for the hybrid)",
                    /*required=*/true);
  }
  return Ok(name, kind + "; a cgroup was created and removed there");
}

DoctorCheck CgroupControllersCheck(const CgroupLayout& l) {
  const char* name = "cgroup.controllers";
  std::string seen = "v1: " + Join(l.v1) + "; cgroup2: " + Join(l.v2);
  std::set<std::string> absent;
  for (const char* c : {"memory", "pids", "cpu"}) {
    if (!l.v1.count(c) && !l.v2.count(c)) absent.insert(c);
  }
  if (absent.empty()) return Ok(name, seen, /*required=*/false);
  return Degraded(name, "no " + Join(absent) + " controller (" + seen + ")",
                  "enable the controller (kernel config or cgroup_enable= boot option); "
                  "until then the policy's limits for it are not enforced");
}

// Whether a BPF_CGROUP_DEVICE program loads (r0 = 1; exit): the device
// allowlist on cgroup2 (sandbox/device_filter.h). Loaded, never attached.
bool DeviceProgramLoads() {
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].imm = 1;
  insns[1].code = BPF_JMP | BPF_EXIT;
  static const char kLicense[] = "Apache-2.0";
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<uint64_t>(insns);
  attr.insn_cnt = 2;
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  int fd = static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

DoctorCheck DeviceAllowlistCheck(const CgroupLayout& l) {
  const char* name = "cgroup.devices";
  bool v1 = l.v1.count("devices") > 0;
  bool bpf = !l.v2_mount.empty() && DeviceProgramLoads();
  if (v1 || bpf) {
    std::string how = std::string(v1 ? "v1 devices controller" : "") + (v1 && bpf ? " and " : "") +
                      (bpf ? "BPF_CGROUP_DEVICE on cgroup2" : "");
    return Ok(name, "device allowlist per sandbox: " + how, /*required=*/false);
  }
  return Degraded(name, "no devices controller and no BPF_CGROUP_DEVICE: sandboxes get no device allowlist",
                  "enable CONFIG_CGROUP_BPF (or the v1 devices controller); nodev mounts, no CAP_MKNOD and "
                  "seccomp still refuse device nodes");
}

}  // namespace

std::vector<DoctorCheck> SandboxChecks(const DoctorOptions& o) {
  std::vector<DoctorCheck> out;
  out.push_back(Timed(KernelCheck));
  for (NamespaceKind kind : kAllNamespaces) {
    NamespaceText t = TextFor(kind);
    out.push_back(Timed([&] {
      return FromProbe(std::string("namespace.") + NamespaceName(kind),
                       ProbeNamespace(kind, o.probe_timeout),
                       std::string("unshare(") + t.flag + ") in a child: " + t.used,
                       std::string("run as root (not in a container that forbids unshare) on a "
                                   "kernel with ") + t.config);
    }));
  }
  out.push_back(Timed([&] {
    return FromProbe("userns", ProbeUserNamespace(o.probe_timeout),
                     "unshare(CLONE_NEWUSER) in a child; uid_map and gid_map \"0 0x6FFF0000 65536\" written "
                     "(sandbox root is host uid 1879048192)",
                     "run as root on a kernel with CONFIG_USER_NS and user.max_user_namespaces > 0; "
                     "without it only policies with [sandbox] user_namespace = false can run");
  }));
  out.push_back(Timed([&] {
    return FromProbe("overlayfs", ProbeOverlay(o.scratch_dir, o.probe_timeout),
                     "mounted an overlay in a private mount namespace; lower visible, write "
                     "landed in upper",
                     "load the overlay module (modprobe overlay) or enable CONFIG_OVERLAY_FS");
  }));
  out.push_back(Timed([&] {
    return FromProbe("userns.idmap_overlay", ProbeIdmappedOverlay(o.scratch_dir, o.probe_timeout),
                     "overlay on idmapped layers (open_tree + mount_setattr MOUNT_ATTR_IDMAP) in " + o.scratch_dir +
                         ": a root-owned lower file shows as host uid 0x6FFF0000",
                     "use Linux >= 5.19 (overlayfs on idmapped layers) with layers on ext4, xfs, btrfs or "
                     "tmpfs; else only policies with [sandbox] user_namespace = false can run");
  }));
  out.push_back(Timed([&] {
    return FromProbe("pivot_root", ProbePivotRoot(o.scratch_dir, o.probe_timeout),
                     "pivoted into a tmpfs in a private mount namespace",
                     "run on a real root filesystem (pivot_root fails on an initramfs "
                     "rootfs): switch_root to a disk or tmpfs root first");
  }));
  CgroupLayout layout = ReadCgroupLayout();
  out.push_back(Timed([&] { return CgroupLayoutCheck(layout); }));
  out.push_back(Timed([&] { return CgroupControllersCheck(layout); }));
  out.push_back(Timed([&] { return DeviceAllowlistCheck(layout); }));
  out.push_back(Timed([&] {
    return FromProbe("seccomp.filter", ProbeSeccompFilter(o.probe_timeout),
                     "a filter made getppid fail with EXDEV in a child",
                     "enable CONFIG_SECCOMP_FILTER");
  }));
  out.push_back(Timed([&] {
    return FromProbe("seccomp.user_notif", ProbeSeccompUserNotif(o.probe_timeout),
                     "SECCOMP_RET_USER_NOTIF: a listener received getppid and answered it",
                     "use Linux >= 5.5 with CONFIG_SECCOMP_FILTER; deferred syscalls need it");
  }));
  return out;
}

}  // namespace specula::doctor
