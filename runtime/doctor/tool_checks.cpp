// Checks of the tools beside the sandbox: which eBPF program types load
// (ebpf/probe.h) and whether CRIU is there, works, and needs its two
// workarounds on this machine (no hardware breakpoints, no tmpfs /run).
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "common/paths.h"
#include "common/spawn.h"
#include "ebpf/probe.h"
#include "runtime/criu/breakpoint_probe.h"
#include "runtime/criu/criu_driver.h"
#include "runtime/doctor/checks.h"

namespace specula::doctor {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// A program type the design is built on (tracepoints, cgroup hooks): missing
// is fatal for effect tracing and egress policy.
DoctorCheck RequiredType(const char* name, const ebpf::ProgramTypeProbe& p) {
  if (p.loaded) return Ok(name, p.detail);
  return Missing(name, p.detail,
                 "run as root (CAP_BPF, CAP_PERFMON) on a kernel with CONFIG_BPF_SYSCALL and "
                 "tracepoints; lockdown=confidentiality also refuses it");
}

// An extra the design works without: refused means the feature is off.
DoctorCheck OptionalType(const char* name, const ebpf::ProgramTypeProbe& p, const char* without) {
  if (p.loaded) return Ok(name, p.detail, /*required=*/false);
  return Degraded(name, p.detail, std::string("nothing to do: ") + without);
}

bool KernelAtLeast(int want_major, int want_minor) {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > want_major || (major == want_major && minor >= want_minor);
}

struct CriuVersion {
  int major = 0, minor = 0;  // 0.0 if absent
  std::string text;          // as printed, e.g. "4.1.1"
};

// Parses `criu --version`'s "Version: 4.1.1" line.
CriuVersion ParseCriuVersion(const std::string& out) {
  CriuVersion v;
  auto pos = out.find("Version:");
  if (pos == std::string::npos) return v;
  std::sscanf(out.c_str() + pos, "Version: %d.%d", &v.major, &v.minor);
  auto start = out.find_first_not_of(' ', pos + 8);
  auto end = out.find_first_of(" \n", start);
  if (start != std::string::npos) v.text = out.substr(start, end - start);
  return v;
}

constexpr const char* kInstallCriu =
    "run scripts/setup.sh (installs CRIU >= 4.2 at /opt/specula/criu/bin/criu) or set "
    "SPECULA_CRIU to a CRIU >= 4.2";

// Found, runs, and new enough: kernels >= 6.13 moved the vDSO and only
// CRIU >= 4.1 copes (ENVIRONMENT.md). Returns whether `criu check` may run.
DoctorCheck CriuFoundCheck(const std::string& criu, std::chrono::milliseconds timeout,
                           bool* usable) {
  *usable = false;
  auto r = Spawn({.argv = {criu, "--version"}, .timeout = timeout});
  if (!r.ok()) return Missing("criu", r.error().message(), kInstallCriu);
  if (!r->success()) {
    return Missing("criu", criu + " --version failed: " + ErrorLines(r->err + r->out),
                   kInstallCriu);
  }
  CriuVersion v = ParseCriuVersion(r->out);
  const std::string& version = v.text;
  if (v.major == 0) return Missing("criu", criu + ": no version in its output", kInstallCriu);
  if ((v.major < 4 || (v.major == 4 && v.minor < 1)) && KernelAtLeast(6, 13)) {
    return Missing("criu", "CRIU " + version + " at " + criu +
                               " cannot handle the vDSO of kernels >= 6.13",
                   kInstallCriu);
  }
  *usable = true;
  // Kernels >= 6.16 refuse getsockopt(SO_PASSCRED/SO_PASSSEC) on inet
  // sockets; CRIU < 4.2 asks for them and fails the whole dump (criu issue
  // #2718): an action that leaves a server listening cannot be committed.
  if (v.major == 4 && v.minor < 2 && KernelAtLeast(6, 16)) {
    return Degraded("criu", "CRIU " + version + " at " + criu +
                                " cannot checkpoint processes holding inet sockets on kernels >= 6.16",
                    kInstallCriu);
  }
  return Ok("criu", "CRIU " + version + " at " + criu);
}

DoctorCheck CriuCheckCheck(const std::string& criu, bool usable,
                           std::chrono::milliseconds timeout) {
  if (!usable) return Missing("criu.check", "not run: no usable CRIU", kInstallCriu);
  auto r = Spawn({.argv = {criu, "check"}, .timeout = timeout});
  if (!r.ok()) return Missing("criu.check", r.error().message(), kInstallCriu);
  std::string said = ErrorLines(r->out + r->err, 3);
  if (r->timed_out) {
    return Missing("criu.check", "criu check did not finish within " +
                                     std::to_string(timeout.count()) + " ms",
                   "run `criu check` by hand and read its output");
  }
  if (!r->success()) {
    return Missing("criu.check", "criu check failed: " + said,
                   "run `criu check` by hand; a kernel newer than the CRIU is the usual cause");
  }
  return Ok("criu.check", "criu check: " + said);
}

DoctorCheck BreakpointCheck(const DoctorOptions& o) {
  criu::BreakpointProbeResult r = criu::ProbeHardwareBreakpoints(o.breakpoint_timeout);
  std::string cache_note;
  if (!o.breakpoint_cache.empty()) {
    Status st = criu::WriteBreakpointCache(o.breakpoint_cache, r.fired);
    if (!st.ok()) {
      spdlog::warn("doctor: {}", st.ToString());
      cache_note = " (cache not written: " + st.error().message() + ")";
    }
  }
  const char* name = "criu.hw_breakpoints";
  if (r.fired) {
    return Ok(name, r.detail + ": CRIU can use its parasite breakpoint" + cache_note,
              /*required=*/false);
  }
  return Degraded(name, r.detail + cache_note,
                  "nothing to do: specula runs CRIU with CRIU_FAULT=130 (PTRACE_SYSCALL "
                  "instead of a breakpoint; a plain `criu dump` would hang here)");
}

// The route out of a branch's network namespace for network modes allowlist
// and lossy (sandbox/net_uplink.h). Without it those modes give loopback only.
DoctorCheck UplinkCheck() {
  const char* path = "/usr/bin/slirp4netns";
  const char* name = "net.uplink";
  if (::access(path, X_OK) != 0) {
    return Degraded(name, "slirp4netns not found at " + std::string(path) +
                              ": network modes allowlist and lossy give branches loopback only",
                    "apt-get install slirp4netns (scripts/setup.sh does)", /*required=*/false);
  }
  return Ok(name, std::string("slirp4netns at ") + path + ": allowlist/lossy branches get a route out",
            /*required=*/false);
}

// CRIU only keeps its kernel-feature cache (criu.kdat) on a tmpfs /run.
// speculad never relies on the host's /run: its CriuDriver runs every CRIU
// call in a mount namespace whose /run is the driver's own tmpfs. So the
// check is that mechanism, end to end: a driver over a scratch dir, one
// `criu check` through it, and the cache file it must leave there.
DoctorCheck KdatCacheCheck(const DoctorOptions& o, const std::string& criu, bool usable) {
  const char* name = "criu.kdat_cache";
  if (!usable) return Degraded(name, "not run: no usable CRIU", kInstallCriu);
  std::string tmpl = o.scratch_dir + "/specula-doctor-kdat-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Degraded(name, Error::FromErrno("mkdtemp in " + o.scratch_dir).message(),
                    "make " + o.scratch_dir + " writable; CRIU works without its cache, only slower");
  }
  DoctorCheck out;
  {
    criu::CriuOptions co;
    co.criu_path = criu;
    co.kdat_dir = tmpl + "/run";
    co.timeout = o.criu_timeout;
    auto driver = criu::CriuDriver::Create(co);
    if (!driver.ok()) {
      out = Degraded(name, "speculad's private tmpfs /run for CRIU: " + driver.error().message(),
                     "CRIU works without its cache, only slower (tens of ms per call)");
    } else if (auto checked = (*driver)->Check(); !checked.ok()) {
      out = Degraded(name, checked.error().message(), checked.error().hint());
    } else if (!(*driver)->KernelFeaturesCached()) {
      out = Degraded(name, "criu check through speculad's private tmpfs /run left no criu.kdat there",
                     "CRIU re-probes the kernel on every call (tens of ms); specula works either way");
    } else {
      out = Ok(name,
               "speculad runs CRIU with its own tmpfs /run (<state>/criu-run): criu check through it left "
               "criu.kdat there, so later calls skip the kernel probe",
               /*required=*/false);
    }
  }  // the driver unmounts its tmpfs
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return out;
}

}  // namespace

std::vector<DoctorCheck> EbpfChecks() {
  auto start = Clock::now();
  ebpf::ProgramTypeSupport s = ebpf::ProbeProgramTypes();
  // One probe run covers all of them: share its time out evenly.
  std::vector<DoctorCheck> out;
  struct stat st {};
  bool file = ::stat("/sys/kernel/btf/vmlinux", &st) == 0;
  if (file && s.vmlinux_btf) {
    out.push_back(Ok("btf", "/sys/kernel/btf/vmlinux present and parsed (CO-RE works)"));
  } else {
    out.push_back(Missing("btf",
                          file ? "/sys/kernel/btf/vmlinux present but libbpf cannot parse it"
                               : "/sys/kernel/btf/vmlinux absent",
                          "use a kernel built with CONFIG_DEBUG_INFO_BTF=y"));
  }
  out.push_back(RequiredType("ebpf.tracepoint", s.tracepoint));
  out.push_back(RequiredType("ebpf.raw_tp", s.raw_tp));
  out.push_back(OptionalType("ebpf.tp_btf", s.tp_btf,
                             "tracing uses tracepoint and raw_tp programs instead"));
  out.push_back(RequiredType("ebpf.cgroup_sock_addr", s.cgroup_sock_addr));
  out.push_back(OptionalType("ebpf.fentry", s.fentry,
                             "effect tracing uses tracepoints; fentry programs are skipped"));
  out.push_back(OptionalType("ebpf.lsm", s.lsm,
                             "LSM programs are skipped; seccomp and cgroup hooks enforce the "
                             "policy (enabling them needs lsm=...,bpf and no lockdown)"));
  auto each = Since(start) / static_cast<long>(out.size());
  for (auto& c : out) c.duration = each;
  return out;
}

std::vector<DoctorCheck> CriuChecks(const DoctorOptions& o) {
  std::string criu = o.criu_path.empty() ? CriuPath() : o.criu_path;
  std::vector<DoctorCheck> out;
  bool usable = false;
  auto start = Clock::now();
  out.push_back(CriuFoundCheck(criu, o.criu_timeout, &usable));
  out.back().duration = Since(start);
  start = Clock::now();
  out.push_back(CriuCheckCheck(criu, usable, o.criu_timeout));
  out.back().duration = Since(start);
  start = Clock::now();
  out.push_back(BreakpointCheck(o));
  out.back().duration = Since(start);
  start = Clock::now();
  out.push_back(KdatCacheCheck(o, criu, usable));
  out.back().duration = Since(start);
  start = Clock::now();
  out.push_back(UidChangedDumpCheck(o, criu, usable));
  out.back().duration = Since(start);
  start = Clock::now();
  out.push_back(UplinkCheck());
  out.back().duration = Since(start);
  return out;
}

}  // namespace specula::doctor
