#include "sandbox/sandbox_plan.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "policies/containment.h"

namespace specula::sandbox {
namespace {

Status Invalid(const std::string& what) { return Error(Code::kInvalidArgument, what); }

Status CheckDir(const std::string& what, const std::string& path) {
  if (path.empty() || path.front() != '/') return Invalid(what + " '" + path + "' must be absolute");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error::FromErrno(what + " " + path);
  if (!S_ISDIR(st.st_mode)) return Invalid(what + " " + path + " is not a directory");
  return Status::Ok();
}

// overlayfs option syntax gives these characters a meaning.
Status CheckOverlayPath(const std::string& what, const std::string& path) {
  if (path.find_first_of(",:\\\n") != std::string::npos) {
    return Invalid(what + " '" + path + "' contains one of , : \\ newline (unusable in overlay options)");
  }
  return Status::Ok();
}

std::string HexOf(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

MountStep Step(MountStep::Kind kind, std::string target, std::string step) {
  MountStep s{};
  s.kind = kind;
  s.target = std::move(target);
  s.step = std::move(step);
  return s;
}

MountStep Mount(std::string source, std::string target, std::string fstype, unsigned long flags,
                std::string data, std::string step) {
  MountStep s = Step(MountStep::Kind::kMount, std::move(target), std::move(step));
  s.source = std::move(source);
  s.fstype = std::move(fstype);
  s.flags = flags;
  s.data = std::move(data);
  return s;
}

MountStep Mkdir(std::string target, unsigned mode) {
  MountStep s = Step(MountStep::Kind::kMkdir, target, "mkdir " + target);
  s.mode = mode;
  return s;
}

// mkdir for every missing ancestor of `path` (inside the sandbox).
void AddParents(std::vector<MountStep>& steps, const std::string& path) {
  for (size_t i = path.find('/', 1); i != std::string::npos; i = path.find('/', i + 1)) {
    steps.push_back(Mkdir(path.substr(0, i), 0755));
  }
}

}  // namespace

const std::vector<std::string>& SandboxDevices() {
  static const std::vector<std::string> kDevices = {"null", "zero", "full", "random", "urandom", "tty"};
  return kDevices;
}

bool IsNormalAbsolute(const std::string& p) {
  if (p.empty() || p.front() != '/') return false;
  if (p == "/") return true;
  if (p.back() == '/' || p.find("//") != std::string::npos) return false;
  if (p.find('\0') != std::string::npos) return false;
  std::string with_slash = p + "/";
  return with_slash.find("/./") == std::string::npos && with_slash.find("/../") == std::string::npos;
}

Status ValidateSpec(const SandboxSpec& spec) {
  static const std::regex kName(R"(^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)");
  if (!std::regex_match(spec.name, kName)) {
    return Invalid("sandbox name '" + spec.name + "' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
  }
  SPECULA_TRY(CheckDir("base", spec.base));
  SPECULA_TRY(CheckOverlayPath("base", spec.base));
  for (const auto& l : spec.layers) {
    SPECULA_TRY(CheckDir("layer", l));
    SPECULA_TRY(CheckOverlayPath("layer", l));
  }
  SPECULA_TRY(CheckDir("upper_dir", spec.upper_dir));
  SPECULA_TRY(CheckOverlayPath("upper_dir", spec.upper_dir));
  SPECULA_TRY(CheckDir("work_dir", spec.work_dir));
  SPECULA_TRY(CheckOverlayPath("work_dir", spec.work_dir));
  if (!IsNormalAbsolute(spec.run_dir) || spec.run_dir == "/") {
    return Invalid("run_dir '" + spec.run_dir + "' must be a normalised absolute path");
  }
  for (const auto& b : spec.binds) {
    if (!IsNormalAbsolute(b.host_path)) return Invalid("bind host path '" + b.host_path + "' not normalised");
    struct stat st {};
    if (::lstat(b.host_path.c_str(), &st) != 0) return Error::FromErrno("bind source " + b.host_path);
    if (S_ISLNK(st.st_mode)) return Invalid("bind source " + b.host_path + " is a symlink");
    // These read the uts namespace of whoever reads or writes them (not of
    // whoever looked them up, as /proc/sys/net and ipc knobs do), so no bind
    // can reach the host's value: refuse rather than silently isolate. The
    // rule is policies' (policy check refuses such lossy paths too).
    if (policy::BindCannotReachHost(b.host_path)) {
      return Invalid("bind source " + b.host_path + " follows the uts namespace of its user; "
                     "a sandbox cannot reach the host's through a bind");
    }
    if (!IsNormalAbsolute(b.sandbox_path) || b.sandbox_path == "/") {
      return Invalid("bind target '" + b.sandbox_path + "' must be a normalised absolute path, not /");
    }
    if ((b.sandbox_path == "/proc" || b.sandbox_path.rfind("/proc/", 0) == 0) &&
        !IsProcSysTarget(b.sandbox_path)) {
      return Invalid("bind target " + b.sandbox_path + " is under /proc (only /proc/sys/... knobs can be bound)");
    }
  }
  if (spec.policy.sandbox.user_namespace) {
    SPECULA_TRY(ValidateIdRange(spec.ids));
    if (spec.idmap && !(spec.idmap->range() == spec.ids)) {
      return Invalid("the idmap user namespace maps another id range than the sandbox's");
    }
    if (std::filesystem::path(spec.upper_dir).parent_path() != std::filesystem::path(spec.work_dir).parent_path()) {
      return Invalid("upper_dir and work_dir must be in one directory (an idmapped overlay needs them on one mount)");
    }
    for (const auto& b : spec.binds) {
      if (b.host_path.rfind("/proc/", 0) == 0) {
        return Error(Code::kInvalidArgument, "bind of " + b.host_path + " needs the host's root inside")
            .WithHint("kernel knobs accept writes from the host's root only; a policy with lossy /proc/sys "
                      "paths must say [sandbox] user_namespace = false");
      }
    }
  }
  for (const auto& m : spec.masked_host_paths) {
    if (!IsNormalAbsolute(m) || m == "/") return Invalid("masked host path '" + m + "' not normalised or /");
  }
  for (const auto& r : spec.policy.paths) {
    if (!IsNormalAbsolute(r.path)) return Invalid("policy path '" + r.path + "' not normalised");
    if (r.mode == policy::PathMode::kHidden && r.path == "/") return Invalid("cannot hide /");
  }
  static const std::regex kHost(R"(^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$)");
  if (!std::regex_match(spec.policy.sandbox.hostname, kHost)) {
    return Invalid("hostname '" + spec.policy.sandbox.hostname + "' is not a valid host name");
  }
  const auto& r = spec.policy.resources;
  if (r.memory_bytes < (16ULL << 20)) return Invalid("memory limit below 16 MiB");
  if (r.pids < 8) return Invalid("pids limit below 8");
  if (r.cpu_millis < 10) return Invalid("cpu_millis below 10");
  if (r.cpu_weight < 1 || r.cpu_weight > 10000) return Invalid("cpu_weight outside 1..10000");
  if (r.nofile < 16) return Invalid("nofile below 16");
  if (r.action_timeout_ms == 0) return Invalid("action timeout 0");
  if (r.stdout_cap == 0 || r.stderr_cap == 0) return Invalid("output caps must be positive");
  return spec.shell.Validate();
}

OverlayLayers SandboxOverlayLayers(const SandboxSpec& spec) {
  OverlayLayers l;
  for (auto it = spec.layers.rbegin(); it != spec.layers.rend(); ++it) l.lowers.push_back(*it);
  l.lowers.push_back(spec.base);
  l.upper = spec.upper_dir;
  l.work = spec.work_dir;
  return l;
}

std::string InsidePath(const SandboxSpec& spec, const std::string& host_path) {
  if (spec.base == "/") return host_path;
  if (host_path == spec.base) return "/";
  if (host_path.rfind(spec.base + "/", 0) == 0) return host_path.substr(spec.base.size());
  return "";
}

const std::vector<std::string>& MaskedKernelPaths() {
  // The OCI runtime spec's default masked paths (runc, crun): kernel memory,
  // keys, timers, scheduler and firmware state no sandbox needs to read.
  static const std::vector<std::string> kMasked = {
      "/proc/acpi",          "/proc/asound",      "/proc/kcore",
      "/proc/keys",          "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
      "/proc/sched_debug",   "/proc/scsi",        "/proc/kallsyms",   "/proc/kmsg",
      "/proc/sysrq-trigger", "/sys/firmware",     "/sys/devices/virtual/powercap",
      "/sys/kernel/debug",   "/sys/kernel/security",
  };
  return kMasked;
}

bool IsProcSysTarget(const std::string& p) { return p.rfind("/proc/sys/", 0) == 0 && p.size() > 10; }

std::vector<MountStep> BuildMountSteps(const SandboxSpec& spec, const std::vector<int>& bind_trees) {
  using K = MountStep::Kind;
  std::vector<MountStep> s;
  const unsigned long kSafe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  // /dev: a small tmpfs with the harmless host devices bound in.
  s.push_back(Mkdir("/dev", 0755));
  s.push_back(Mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755,size=1024k",
                    "mount /dev"));
  for (const auto& d : SandboxDevices()) {
    MountStep touch = Step(K::kTouch, "/dev/" + d, "create /dev/" + d);
    touch.mode = 0666;
    s.push_back(touch);
    MountStep bind = Step(K::kBind, "/dev/" + d, "bind /dev/" + d);
    bind.source = "/proc/dev/" + d;  // the old root, parked on /proc
    s.push_back(bind);
  }
  s.push_back(Mkdir("/dev/pts", 0755));
  s.push_back(Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620", "mount devpts"));
  auto link = [&](const char* target, const char* path) {
    MountStep l = Step(K::kSymlink, path, std::string("symlink ") + path);
    l.source = target;
    s.push_back(l);
  };
  link("pts/ptmx", "/dev/ptmx");
  link("/proc/self/fd", "/dev/fd");
  link("/proc/self/fd/0", "/dev/stdin");
  link("/proc/self/fd/1", "/dev/stdout");
  link("/proc/self/fd/2", "/dev/stderr");
  s.push_back(Mkdir("/dev/shm", 01777));

  s.push_back(Mkdir("/sys", 0755));
  s.push_back(Mount("sysfs", "/sys", "sysfs", kSafe | MS_RDONLY, "", "mount /sys read-only"));

  // Private /run and /var/run: host daemons' sockets (docker, D-Bus,
  // systemd) live there and must not be reachable.
  const auto& res = spec.policy.resources;
  s.push_back(Mkdir("/run", 0755));
  s.push_back(Mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=65536k", "mount /run"));
  s.push_back(Mkdir(kIoDirInside, 0700));
  uint64_t io_size = std::max<uint64_t>(64ULL << 20, 4 * (res.stdout_cap + res.stderr_cap));
  s.push_back(Mount("tmpfs", kIoDirInside, "tmpfs", MS_NOSUID | MS_NODEV,
                    "mode=700,size=" + std::to_string(io_size), "mount action io tmpfs"));
  MountStep var_run = Step(K::kTmpfsIfDir, "/var/run", "mount /var/run");
  var_run.flags = MS_NOSUID | MS_NODEV;
  var_run.data = "mode=755,size=65536k";
  var_run.optional = true;
  s.push_back(var_run);

  // Caller's binds (lossy paths rw, others ro): detached trees the parent
  // cloned in the host's namespaces, attached here. Targets under /proc/sys
  // wait for the sandbox's own /proc (below).
  auto attach = [&](size_t i) {
    MountStep a = Step(K::kAttach, spec.binds[i].sandbox_path, "attach " + spec.binds[i].sandbox_path.substr(0, 40));
    a.fd = i < bind_trees.size() ? bind_trees[i] : -1;
    a.read_only = spec.binds[i].read_only;  // informational: the parent already made the tree read-only
    s.push_back(a);
  };
  const bool userns = spec.policy.sandbox.user_namespace;
  bool any_bind = false;
  for (size_t i = 0; i < spec.binds.size(); ++i) {
    const auto& b = spec.binds[i];
    if (IsProcSysTarget(b.sandbox_path)) continue;
    any_bind = true;
    const size_t first = s.size();
    AddParents(s, b.sandbox_path);
    struct stat st {};
    bool dir = ::lstat(b.host_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (dir) {
      s.push_back(Mkdir(b.sandbox_path, 0755));
    } else {
      MountStep t = Step(K::kTouch, b.sandbox_path, "create bind target");
      t.mode = 0644;
      s.push_back(t);
    }
    // Named for the failure report: a symlink on the way fails here (ELOOP).
    for (size_t k = first; k < s.size(); ++k) s[k].step = "bind target " + s[k].target;
    // In a user namespace the sandbox's root may not attach a tree the
    // host's root cloned: the parent attaches them all at this point
    // (sandbox.cpp AttachBinds) while init waits.
    if (!userns) attach(i);
  }
  if (userns && any_bind) s.push_back(Step(K::kAwaitParent, "", "attach binds"));

  // The old root sits on top of the sandbox's proc, mounted before pivot_root
  // (child_setup.cpp RunInit says why).
  s.push_back(Step(K::kDetach, "/proc", "detach old root"));
  for (const char* p : {"/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"}) {
    MountStep ro = Step(K::kReadOnly, p, std::string("read-only ") + p);
    ro.optional = true;
    s.push_back(ro);
  }
  // Knobs of the sandbox's (read-only) /proc/sys covered by the host's: the
  // file exists already (same sysctl, the branch's namespace).
  for (size_t i = 0; i < spec.binds.size(); ++i) {
    if (IsProcSysTarget(spec.binds[i].sandbox_path)) attach(i);
  }

  for (const auto& p : MaskedKernelPaths()) {
    MountStep m = Step(K::kMask, p, "mask " + p);
    m.optional = true;
    s.push_back(m);
  }
  // The runtime's own state (its database, layers, CRIU images, journals,
  // socket) wherever the base shows it.
  for (const auto& h : spec.masked_host_paths) {
    std::string inside = InsidePath(spec, h);
    if (inside.empty() || inside == "/") continue;
    MountStep m = Step(K::kMask, inside, "mask " + inside.substr(0, 44));
    m.optional = true;
    s.push_back(m);
  }

  // Policy path rules, parents before children so a child rule wins.
  std::vector<policy::PathRule> rules = spec.policy.paths;
  std::stable_sort(rules.begin(), rules.end(),
                   [](const auto& a, const auto& b) { return a.path.size() < b.path.size(); });
  for (const auto& r : rules) {
    if (r.mode == policy::PathMode::kReadOnly) {
      MountStep ro = Step(K::kReadOnly, r.path, "read-only " + r.path.substr(0, 40));
      ro.optional = true;
      s.push_back(ro);
    } else if (r.mode == policy::PathMode::kHidden) {
      MountStep m = Step(K::kMask, r.path, "hide " + r.path.substr(0, 44));
      m.optional = true;
      s.push_back(m);
    }
    // kLossy arrives as spec.binds; kSandboxed is the overlay itself.
  }
  for (auto& step : s) {
    if (step.step.size() > 50) step.step.resize(50);
  }
  return s;
}

std::vector<ExternalMount> BuildExternalMounts(const SandboxSpec& spec) {
  std::vector<ExternalMount> out;
  for (const auto& d : SandboxDevices()) {
    out.push_back({"/dev/" + d, "specula-dev-" + d, "/dev/" + d});
  }
  for (const auto& b : spec.binds) {
    out.push_back({b.sandbox_path, "specula-bind-" + HexOf(b.sandbox_path), b.host_path});
  }
  return out;
}

}  // namespace specula::sandbox
