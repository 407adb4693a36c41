#include "runtime/criu/criu_driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <csignal>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/crash_point.h"
#include "common/files.h"
#include "common/paths.h"
#include "common/spawn.h"
#include "runtime/criu/breakpoint_probe.h"

namespace specula::criu {
namespace {

// What the forked child (before exec'ing CRIU) needs, prepared in the parent
// so the child does not allocate.
struct ChildSetup {
  const char* kdat_dir = nullptr;      // bind-mounted over /run if set
  const char* const* cgroup_procs = nullptr;  // NULL-terminated list of cgroup.procs files
  pid_t parent = ::getpid();           // the runtime, whose death must end CRIU too
};

// Async-signal-safe: raw syscalls only.
int WriteSelfPid(const char* procs_file) {
  char buf[24];
  int n = 0;
  char tmp[24];
  for (pid_t p = ::getpid(); p > 0; p /= 10) tmp[n++] = static_cast<char>('0' + p % 10);
  for (int i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  int fd = ::open(procs_file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = ::write(fd, buf, static_cast<size_t>(n));
  int err = w < 0 ? errno : 0;
  ::close(fd);
  return err;
}

// Runs in the child between fork and exec: a private mount namespace whose
// /run is the driver's tmpfs (the kdat cache), and, for restores, the
// sandbox's cgroups, which the restored tasks then inherit.
int CriuChildSetup(void* arg) {
  const auto* s = static_cast<const ChildSetup*>(arg);
  // CRIU dies with the runtime. An orphaned CRIU would go on writing into
  // the state dir (and, for a dump, hold the tree seized) while a restarted
  // daemon's crash recovery removes that very dir; killed instead, whatever
  // it half-did is recovery's to clean, and the seized tasks are detached.
  // (PDEATHSIG follows the forking thread: Spawn's caller waits for CRIU.)
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errno;
  if (::getppid() != s->parent) return ESRCH;  // the runtime died before prctl
  if (s->kdat_dir != nullptr) {
    if (::unshare(CLONE_NEWNS) != 0) return errno;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
    // Recursive: the binds staged for a restore are mounts below kdat_dir
    // (restore/<branch>/<i>). A plain bind showed CRIU the empty staging
    // files under them, so a restored sandbox's lossy path was that file,
    // not the host's, and a later restore of its image failed on the
    // then deleted file ("mnt-v2: Can't re-create deleted file").
    if (::mount(s->kdat_dir, "/run", nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
  }
  for (const char* const* p = s->cgroup_procs; p != nullptr && *p != nullptr; ++p) {
    if (int e = WriteSelfPid(*p); e != 0) return e;
  }
  return 0;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Error CriuFailed(const std::string& what, const SpawnResult& r, const std::string& log_path) {
  std::string log = ReadFileOrEmpty(log_path);
  std::string lines = ErrorLines(log.empty() ? r.err : log);
  std::string how = r.timed_out ? "timed out after " + std::to_string(r.duration.count()) + " ms"
                    : r.term_signal ? "killed by signal " + std::to_string(r.term_signal)
                                    : "exit " + std::to_string(r.exit_code);
  // What CRIU refuses is about the tree and the kernel (a process it cannot
  // checkpoint, a missing capability or feature), not a bug of ours: never
  // `internal` (docs/error-model.md).
  Error e(r.timed_out ? Code::kDeadlineExceeded : Code::kFailedPrecondition,
          "criu " + what + " failed (" + how + "): " + lines);
  e.WithHint("full log: " + log_path);
  return e;
}

}  // namespace

bool CriuOptions::DefaultNoBreakpoints() {
  const char* v = std::getenv("SPECULA_CRIU_FAULT");
  if (v != nullptr && *v != '\0') return std::string(v) != "0";
  // The real probe (a debug-register breakpoint set with ptrace, cached per
  // boot; `specula doctor` refreshes it): CRIU's parasite exit relies on hardware breakpoints, and
  // where they do not fire a dump hangs, so CRIU_FAULT=130 is needed.
  return CriuNeedsNoBreakpoints();
}

Result<std::unique_ptr<CriuDriver>> CriuDriver::Create(CriuOptions opts) {
  if (opts.criu_path.empty()) opts.criu_path = CriuPath();
  if (opts.criu_path.find('/') != std::string::npos && ::access(opts.criu_path.c_str(), X_OK) != 0) {
    return Error::FromErrno("criu at " + opts.criu_path).WithHint("run scripts/setup.sh or set SPECULA_CRIU");
  }
  std::unique_ptr<CriuDriver> d(new CriuDriver(std::move(opts)));
  if (!d->opts_.kdat_dir.empty()) {
    if (Status st = MakeDirs(d->opts_.kdat_dir, 0700); !st.ok()) {
      return std::move(st).error().Context("criu kdat dir");
    }
    // A tmpfs because CRIU only trusts (and only writes) its cache on one:
    // a tmpfs cannot outlive a reboot into another kernel.
    // A daemon that crashed left its tmpfs mounted: adopt it (the cache in
    // it is still valid) rather than stack one more mount per crash.
    struct stat here, parent;
    struct statfs fs;
    std::string up = d->opts_.kdat_dir + "/..";
    bool left_mounted = ::stat(d->opts_.kdat_dir.c_str(), &here) == 0 && ::stat(up.c_str(), &parent) == 0 &&
                        here.st_dev != parent.st_dev && ::statfs(d->opts_.kdat_dir.c_str(), &fs) == 0 &&
                        fs.f_type == TMPFS_MAGIC;
    if (!left_mounted && ::mount("specula-criu-run", d->opts_.kdat_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                                 "mode=0711,size=4m") != 0) {
      return Error::FromErrno("mount tmpfs on " + d->opts_.kdat_dir);
    }
    d->kdat_mounted_ = true;
    // Searchable, not listable: only CRIU (for which it is /run) and the
    // runtime (below the 0700 state dir) ever name paths in it.
    const std::string stage = d->RestoreStageDir();
    if (Status st = MakeDirs(stage, 0711); !st.ok()) return std::move(st).error().Context("criu restore stage dir");
    for (const std::string& dir : {d->opts_.kdat_dir, stage}) {
      if (::chmod(dir.c_str(), 0711) != 0) return Error::FromErrno("chmod " + dir);
    }
  }
  return d;
}

std::string CriuDriver::RestoreStageDir() const {
  return kdat_mounted_ ? opts_.kdat_dir + "/restore" : std::string();
}

CriuDriver::~CriuDriver() {
  if (kdat_mounted_) {
    if (::umount2(opts_.kdat_dir.c_str(), MNT_DETACH) == 0) ::rmdir(opts_.kdat_dir.c_str());
  }
}

Result<SpawnResult> CriuDriver::RunCriu(SpawnOptions so, const char* const* cgroup_procs) const {
  so.env_set = Env();
  so.timeout = opts_.timeout;
  ChildSetup setup{kdat_mounted_ ? opts_.kdat_dir.c_str() : nullptr, cgroup_procs};
  so.child_setup = &CriuChildSetup;
  so.child_setup_arg = &setup;
  return Spawn(so);
}

std::vector<std::string> CriuDriver::Env() const {
  std::vector<std::string> env;
  if (opts_.no_breakpoints) env.push_back("CRIU_FAULT=130");
  return env;
}

namespace {

// Opens a fresh image dir (written by CRIU as root 0700/0600, flat: no
// subdirs) for the restored tasks of a tree in a user namespace: they open
// some images (tty-info.img, timens-0.img, ...) after they entered the
// namespace, some as host root without any capability over host inodes,
// some as the mapped root; owner or not, they need read and search by
// "other". Nothing is widened beyond that: the images dir above and the
// state dir stay 0700 root, so no host user reaches them, and no sandbox
// has the path in its mount namespace. Nothing is followed: fchmodat on
// names read from the dir fd, regular files only.
Status OpenImagesToRestoredTasks(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return Error::FromErrno("open image dir " + dir);
  DIR* d = ::fdopendir(dfd);
  if (d == nullptr) {
    int e = errno;
    ::close(dfd);
    return Error::FromErrno("read image dir " + dir, e);
  }
  Status st = Status::Ok();
  while (dirent* e = ::readdir(d)) {
    if (e->d_type != DT_REG) continue;
    if (::fchmodat(dfd, e->d_name, 0644, 0) != 0) {
      st = Error::FromErrno("chmod image " + dir + "/" + e->d_name);
      break;
    }
  }
  if (st.ok() && ::fchmod(dfd, 0755) != 0) st = Error::FromErrno("chmod image dir " + dir);
  ::closedir(d);
  return st;
}

}  // namespace

Result<std::string> CriuDriver::Check() const {
  SpawnOptions so;
  so.argv = {opts_.criu_path, "check"};
  SPECULA_ASSIGN_OR_RETURN(SpawnResult r, RunCriu(std::move(so)));
  if (!r.success()) {
    std::string how = r.timed_out ? "timed out" : "exit " + std::to_string(r.exit_code);
    return Error(r.timed_out ? Code::kDeadlineExceeded : Code::kFailedPrecondition,
                 "criu check failed (" + how + "): " + ErrorLines(r.out + r.err, 3))
        .WithHint("run `criu check` by hand; a kernel newer than the CRIU is the usual cause");
  }
  return ErrorLines(r.out + r.err, 3);
}

bool CriuDriver::KernelFeaturesCached() const {
  struct stat st;
  return kdat_mounted_ && ::stat((opts_.kdat_dir + "/criu.kdat").c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<DumpResult> CriuDriver::DumpOnce(const DumpRequest& req) const {
  if (req.pid <= 1) return Error(Code::kInvalidArgument, "criu dump: bad pid " + std::to_string(req.pid));
  if (req.image_dir.empty() || req.image_dir[0] != '/') {
    return Error(Code::kInvalidArgument, "criu dump: image dir must be absolute");
  }
  if (Status st = MakeDirs(req.image_dir, 0700); !st.ok()) {
    return std::move(st).error().Context("criu dump");
  }
  SpawnOptions so;
  so.argv = {opts_.criu_path, "dump", "-t", std::to_string(req.pid), "-D", req.image_dir,
             "-o", "dump.log", "-v4",
             // The sandbox owns cgroups; restore places tasks in the new sandbox's.
             "--manage-cgroups=ignore",
             // The sandbox's netns is private (loopback at most) and the tree is
             // stopped for the dump: no iptables lock needed (nor installed).
             "--network-lock", "skip"};
  if (req.leave_running) so.argv.push_back("--leave-running");
  if (CrashPointArmed("criu.post-dump")) {
    // Crash test: SIGKILL the runtime while CRIU holds the tree frozen with
    // its images written but not yet resumed or killed. CRIU execs action
    // scripts by path; the sleep keeps it there until PDEATHSIG ends it.
    std::string script = req.image_dir + "/crash-point.sh";
    std::ofstream(script) << "#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" != post-dump ] && exit 0\nkill -KILL "
                          << ::getpid() << "\nsleep 2\n";
    ::chmod(script.c_str(), 0700);
    so.argv.push_back("--action-script");
    so.argv.push_back(script);
  }
  for (const auto& [path, key] : req.external_mounts) {
    so.argv.push_back("--external");
    so.argv.push_back("mnt[" + path + "]:" + key);
  }
  SPECULA_ASSIGN_OR_RETURN(SpawnResult r, RunCriu(std::move(so)));
  if (!r.success()) return CriuFailed("dump of pid " + std::to_string(req.pid), r, req.image_dir + "/dump.log");
  if (req.in_user_namespace) {
    SPECULA_TRY_CTX(OpenImagesToRestoredTasks(req.image_dir),
                    "criu dump of pid " + std::to_string(req.pid));
  }
  DumpResult out;
  out.duration = r.duration;
  SPECULA_ASSIGN_OR_RETURN(out.image_bytes, DiskUsage(req.image_dir));
  return out;
}

Result<RestoreResult> CriuDriver::RestoreOnce(const RestoreRequest& req) const {
  for (const auto* p : {&req.image_dir, &req.work_dir, &req.root}) {
    if (p->empty() || (*p)[0] != '/') return Error(Code::kInvalidArgument, "criu restore: paths must be absolute");
  }
  if (Status st = MakeDirs(req.work_dir, 0700); !st.ok()) {
    return std::move(st).error().Context("criu restore");
  }
  std::string pidfile = req.work_dir + "/restore.pid";
  ::unlink(pidfile.c_str());
  SpawnOptions so;
  so.argv = {opts_.criu_path, "restore", "-D", req.image_dir, "-W", req.work_dir,
             "-o", "restore.log", "-v4", "--root", req.root, "--restore-detached",
             "--pidfile", pidfile, "--manage-cgroups=ignore", "--network-lock", "skip"};
  for (const auto& [key, host] : req.external_mounts) {
    // A bind staged on the kdat tmpfs is at /run/... for CRIU.
    std::string path = host;
    if (kdat_mounted_ && path.rfind(opts_.kdat_dir + "/", 0) == 0) path = "/run" + path.substr(opts_.kdat_dir.size());
    so.argv.push_back("--external");
    so.argv.push_back("mnt[" + key + "]:" + path);
  }
  std::vector<std::string> procs;
  for (const auto& cg : req.cgroup_paths) procs.push_back(cg + "/cgroup.procs");
  std::vector<const char*> procs_c;
  for (const auto& p : procs) procs_c.push_back(p.c_str());
  procs_c.push_back(nullptr);
  SPECULA_ASSIGN_OR_RETURN(SpawnResult r, RunCriu(std::move(so), procs_c.data()));
  std::string log = req.work_dir + "/restore.log";
  if (!r.success()) return CriuFailed("restore of " + req.image_dir, r, log);
  std::string pid_text = ReadFileOrEmpty(pidfile);
  char* end = nullptr;
  long pid = std::strtol(pid_text.c_str(), &end, 10);
  if (pid <= 1 || end == pid_text.c_str()) {
    return Error(Code::kInternal, "criu restore: no pid in " + pidfile + ": '" + pid_text + "'");
  }
  return RestoreResult{static_cast<pid_t>(pid), r.duration};
}

namespace {
uint64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
}
}  // namespace

Result<DumpResult> CriuDriver::Dump(const DumpRequest& req) const {
  auto start = std::chrono::steady_clock::now();
  auto r = DumpOnce(req);
  counts_.dump_us += MicrosSince(start);
  ++counts_.dumps;
  if (r.ok()) {
    counts_.dumped_bytes += r->image_bytes;
  } else {
    ++counts_.dump_failures;
  }
  return r;
}

Result<RestoreResult> CriuDriver::Restore(const RestoreRequest& req) const {
  auto start = std::chrono::steady_clock::now();
  auto r = RestoreOnce(req);
  counts_.restore_us += MicrosSince(start);
  ++counts_.restores;
  if (r.ok()) {
    counts_.restored_bytes += req.image_bytes;
  } else {
    ++counts_.restore_failures;
  }
  return r;
}

CriuCounters CriuDriver::counters() const {
  CriuCounters c;
  c.dumps = counts_.dumps.load();
  c.dump_failures = counts_.dump_failures.load();
  c.restores = counts_.restores.load();
  c.restore_failures = counts_.restore_failures.load();
  c.dumped_bytes = counts_.dumped_bytes.load();
  c.restored_bytes = counts_.restored_bytes.load();
  c.dump_seconds = static_cast<double>(counts_.dump_us.load()) / 1e6;
  c.restore_seconds = static_cast<double>(counts_.restore_us.load()) / 1e6;
  return c;
}

}  // namespace specula::criu
