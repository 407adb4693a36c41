// The `criu.dump_uid_changed` check (issue 16, loss 2): can CRIU checkpoint a
// process tree in which one process changed its uid, as an action's
// `sudo -u`, `su` or a service dropping privileges leaves behind? Where it
// cannot (a missing capability such as CAP_SYS_RESOURCE: "Can't get rlimit 0:
// Operation not permitted"), a commit that leaves such a process keeps its
// files but not its processes (flag processes_not_kept). The probe is a real
// dump of a real two-process tree, not a read of capabilities.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/spawn.h"
#include "common/unique_fd.h"
#include "runtime/criu/criu_driver.h"
#include "runtime/doctor/checks.h"
#include "runtime/doctor/kernel_probes.h"

namespace specula::doctor {
namespace {

constexpr uid_t kNobody = 65534;

void ReapGroup(pid_t root) {
  ::kill(-root, SIGKILL);
  int status = 0;
  while (::waitpid(root, &status, 0) < 0 && errno == EINTR) {
  }
}

// Forks the tree: a root in its own session (stdio /dev/null, no other fd of
// ours) and under it a child that drops to another uid/gid. In a user
// namespace (as branches of the default policy run: sandbox.user_namespace)
// the root is the namespace's root, mapped as the doctor's userns probe maps
// it, and the child drops to 1000; without one it drops to 65534. Returns the
// root's pid once the child has changed uid, or an error (nothing left
// running).
Result<pid_t> StartTree(bool in_userns, std::chrono::milliseconds timeout) {
  int p[2], g[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  UniqueFd ready_r(p[0]), ready_w(p[1]);
  if (::pipe2(g, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  UniqueFd go_r(g[0]), go_w(g[1]);
  const uid_t drop_to = in_userns ? 1000 : kNobody;
  pid_t root = ::fork();
  if (root < 0) return Error::FromErrno("fork");
  if (root == 0) {
    // Child of fork: async-signal-safe calls only.
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null < 0) ::_exit(1);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    // Only the two pipes survive, as fds 3 and 4; CRIU must see no fd of the doctor.
    if (::dup2(ready_w.get(), 3) < 0 || ::dup2(go_r.get(), 4) < 0) ::_exit(1);
    ::close_range(5, ~0U, 0);
    char c = 'n';
    if (in_userns) {
      // The parent writes the maps once the namespace exists.
      if (::unshare(CLONE_NEWUSER) != 0 || ::write(3, &c, 1) != 1 || ::read(4, &c, 1) != 1) ::_exit(1);
    }
    ::close(4);
    pid_t dropped = ::fork();
    if (dropped < 0) ::_exit(1);
    if (dropped == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(drop_to) != 0 || ::setuid(drop_to) != 0) ::_exit(1);
      c = 'u';
      if (::write(3, &c, 1) != 1) ::_exit(1);
      ::close(3);
      for (;;) ::pause();
    }
    ::close(3);
    for (;;) ::pause();
  }
  ready_w.Reset();
  go_r.Reset();
  auto wait_for = [&](char want) {
    pollfd pfd{ready_r.get(), POLLIN, 0};
    int n;
    do {
      n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    char c = 0;
    return n > 0 && ::read(ready_r.get(), &c, 1) == 1 && c == want;
  };
  if (in_userns) {
    bool mapped = wait_for('n');
    std::string line = "0 " + std::to_string(kProbeHostIdBase) + " " + std::to_string(kProbeIdCount) + "\n";
    for (const char* leaf : {"/uid_map", "/gid_map"}) {
      std::ofstream map("/proc/" + std::to_string(root) + leaf);
      map << line << std::flush;
      mapped = mapped && map.good();
    }
    if (!mapped || ::write(go_w.get(), "g", 1) != 1) {
      ReapGroup(root);
      return Error(Code::kFailedPrecondition, "the probe's user namespace could not be made and mapped");
    }
  }
  if (!wait_for('u')) {
    ReapGroup(root);
    return Error(Code::kFailedPrecondition,
                 "the probe's process could not change its uid to " + std::to_string(drop_to));
  }
  return root;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One real dump of a StartTree tree: empty if CRIU dumped it, else why not.
std::string DumpOnce(const DoctorOptions& o, const std::string& criu, bool in_userns) {
  std::string dir = o.scratch_dir + "/specula-doctor-dump-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return Error::FromErrno("mkdtemp in " + o.scratch_dir).message();
  std::string why;
  auto root = StartTree(in_userns, o.probe_timeout);
  if (!root.ok()) {
    why = root.error().message();
  } else {
    // CRIU as the driver runs a dump (same switches), but in the doctor's own
    // mount namespace, which the probe's tree shares: only the processes
    // (and the user namespace) are dumped. Without --leave-running CRIU kills
    // the tree once dumped.
    SpawnOptions so;
    so.argv = {criu, "dump", "-t", std::to_string(*root), "-D", dir, "-o", "dump.log", "-v4",
               "--manage-cgroups=ignore", "--network-lock", "skip"};
    if (criu::CriuOptions::DefaultNoBreakpoints()) so.env_set.push_back("CRIU_FAULT=130");
    so.timeout = o.criu_timeout;
    auto r = Spawn(so);
    ReapGroup(*root);
    if (!r.ok()) {
      why = r.error().message();
    } else if (r->timed_out) {
      why = "criu dump did not finish within " + std::to_string(o.criu_timeout.count()) + " ms";
    } else if (!r->success()) {
      std::string log = ReadAll(dir + "/dump.log");
      why = ErrorLines(log.empty() ? r->err + r->out : log, 3);
      if (why.empty()) why = "criu dump exited " + std::to_string(r->exit_code);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return why;
}

}  // namespace

DoctorCheck UidChangedDumpCheck(const DoctorOptions& o, const std::string& criu, bool usable) {
  const char* name = "criu.dump_uid_changed";
  const std::string without =
      "a commit whose action leaves a process that changed uid (sudo -u, su, a daemon dropping "
      "privileges) keeps its files but not its processes (flag processes_not_kept)";
  if (!usable) return Degraded(name, "not run: no usable CRIU", without);
  // Both sandbox kinds: in a user namespace (the default policy) host root
  // holds every capability over the tree, CAP_SYS_RESOURCE included, even
  // where its own bounding set lacks it; without one (sandbox.user_namespace
  // = false) it needs that capability itself.
  std::string in_ns = DumpOnce(o, criu, /*in_userns=*/true);
  std::string host = DumpOnce(o, criu, /*in_userns=*/false);
  if (!in_ns.empty()) {
    return Degraded(name, "criu cannot dump a process that changed uid in a user namespace: " + in_ns, without);
  }
  if (!host.empty()) {
    return Ok(name,
              "criu dumped a process that changed uid in a user namespace (the default policy); "
              "without one (sandbox.user_namespace = false) it cannot: " + host +
                  " (such commits keep files, not processes: flag processes_not_kept)",
              /*required=*/false);
  }
  return Ok(name, "criu dumped a process that changed uid, with and without a user namespace",
            /*required=*/false);
}

}  // namespace specula::doctor
