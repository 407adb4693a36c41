// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting (CLI/StringTools.hpp); the pragma must precede every include to
// cover the standard headers that code is inlined from.
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "runtime/service/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/files.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/unique_fd.h"
#include "common/version.h"
#include "runtime/metrics/endpoint.h"
#include "runtime/metrics/registry.h"
#include "runtime/rpc/server.h"
#include "runtime/rpc/systemd.h"
#include "runtime/service/core_session_service.h"
#include "runtime/service/handlers.h"
#include "runtime/service/metered_session_service.h"
#include "sandbox/sandbox_watch.h"

namespace specula::service {
namespace {

constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE

// One daemon per state dir: a second one would "recover" state the first is
// still using. A POSIX record lock (fcntl F_SETLK), not flock: it belongs to
// the process, so it dies with a kill -9'd daemon even while sandbox
// processes forked from it (which inherit every fd, CLOEXEC or not, until
// they exec) are still alive.
Result<UniqueFd> LockStateDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::FromErrno("create state dir " + dir, ec.value());
  if (::chmod(dir.c_str(), 0700) != 0) return Error::FromErrno("chmod " + dir);
  std::string path = dir + "/speculad.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Error::FromErrno("open " + path);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  // The previous daemon's sandbox watch holds the lock for a moment after
  // that daemon is gone, while it removes its cgroups
  // (sandbox/sandbox_watch.h): wait for it rather than fail.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (::fcntl(fd.get(), F_SETLK, &lock) != 0) {
    if (errno != EACCES && errno != EAGAIN) return Error::FromErrno("lock " + path);
    struct flock holder = lock;
    pid_t pid = 0;
    if (::fcntl(fd.get(), F_GETLK, &holder) == 0 && holder.l_type != F_UNLCK) pid = holder.l_pid;
    if (pid == 0) continue;  // released between the two calls
    auto comm = ReadTextFile("/proc/" + std::to_string(pid) + "/comm");
    if (comm.ok() && *comm == "speculad-watch\n" && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    return Error(Code::kAlreadyExists,
                 "another speculad (pid " + std::to_string(pid) + ") is using state dir " + dir)
        .WithHint("stop it first, or pass another --state-dir");
  }
  return fd;
}

}  // namespace

int DaemonMain(int argc, char** argv) {
  // Before anything can start a thread: SIGTERM must only reach the signalfd.
  if (Status st = rpc::BlockShutdownSignals(); !st.ok()) {
    std::fprintf(stderr, "speculad: %s\n", st.ToString().c_str());
    return 1;
  }
  CLI::App app{"speculad: the specula daemon (JSON-RPC 2.0 on a Unix socket, docs/api.md)", "speculad"};
  std::string socket = kDefaultSocket;
  std::string state_dir = kDefaultStateDir;
  std::string group = "specula";
  std::string log_level = "info";
  size_t quick_workers = 4, blocking_workers = 16;
  uint64_t grace_ms = 30000;
  std::string metrics_listen;
  uint32_t pool_per_session = 3, pool_total = 4;
  bool version = false;
  app.add_option("--socket", socket, "Unix socket to serve")->capture_default_str();
  app.add_option("--state-dir", state_dir, "state directory (database, layers, images)")->capture_default_str();
  app.add_option("--group", group, "group whose members may connect besides root")->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--quick-workers", quick_workers, "threads for quick calls (list, show)")
      ->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--blocking-workers", blocking_workers, "threads for long calls (commit, create)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--shutdown-grace-ms", grace_ms, "on SIGTERM, how long running calls may take to finish")
      ->capture_default_str();
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics (GET /metrics) on HOST:PORT or an absolute Unix socket path; "
                 "off by default");
  app.add_option("--pool-per-session", pool_per_session,
                 "warm branch sandboxes at most per session head; how many follows what the session's heads are asked for "
                 "(0: no warm pool)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  app.add_option("--pool-total", pool_total, "warm branch sandboxes at most, all sessions together")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_flag("--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (version) {
    std::printf("speculad %s\n", Version());
    return 0;
  }
  InitLogging(log_level, "speculad");

  auto fail = [](const Error& err, int status) {
    spdlog::error("{}", err.ToString());
    return status;
  };
  // Before any thread (they read and unset the environment) and before the
  // sandbox watch forks: a socket passed by the service manager
  // (packaging/speculad.socket) replaces --socket, and NOTIFY_SOCKET
  // (Type=notify) gets READY=1 once calls are served. A malformed one is
  // a bad invocation, like a bad flag.
  auto activated = rpc::TakeActivatedSocket();
  if (!activated.ok()) return fail(activated.error(), 2);
  auto notifier = rpc::ManagerNotifier::FromEnvironment();
  if (!notifier.ok()) return fail(notifier.error(), 2);
  if (*activated) {
    const rpc::ActivatedSocket& a = **activated;
    if (!a.path.empty() && app.count("--socket") > 0 && a.path != socket) {
      spdlog::warn("--socket {} ignored: serving the activated socket {}", socket, a.path);
    }
    // The path masks the socket in every branch and is what daemon.version
    // reports; an unnamed socket keeps --socket for both.
    if (!a.path.empty()) socket = a.path;
    spdlog::info("socket activation: serving fd {} ({}{})", a.fd.get(), socket,
                 a.name.empty() ? "" : ", name " + a.name);
  }

  auto lock = LockStateDir(state_dir);
  if (!lock.ok()) return fail(lock.error(), lock.error().code() == Code::kAlreadyExists ? kExitUnavailable : 1);

  // Before any thread: the watch that kills this daemon's sandboxes when it
  // dies (sandbox/sandbox_watch.h). Without it a killed daemon leaves
  // model-written commands running with nobody watching them.
  auto watch = sandbox::StartSandboxWatch(sandbox::InstanceCgroupParent(state_dir),
                                          state_dir + "/speculad.lock");
  if (!watch.ok()) return fail(Error(watch.error()).Context("start the sandbox watch"), 1);

  // Opening the state recovers it after a crash, before the socket exists,
  // so no client ever sees half-reconciled state.
  auto opened = CoreSessionService::Open(state_dir, socket, pool_per_session, pool_total);
  if (!opened.ok()) return fail(Error(opened.error()).Context("open state in " + state_dir), 1);
  CoreSessionService* core = opened->get();
  std::unique_ptr<SessionService> service = std::move(*opened);

  // Metrics only when asked for: without the flag the methods call the
  // core's service directly and nothing listens. The registry belongs to
  // this function; the endpoint (declared after the service) stops before
  // the service it reads goes.
  metrics::Registry registry;
  std::unique_ptr<MeteredSessionService> metered;
  std::unique_ptr<metrics::Endpoint> endpoint;
  SessionService* served = service.get();
  if (!metrics_listen.empty()) {
    metered = std::make_unique<MeteredSessionService>(*service, registry,
                                                      [core] { return core->CriuCounters(); },
                                                      [core] { return core->PoolStats(); });
    served = metered.get();
    auto started = metrics::Endpoint::Start(metrics_listen, [&registry] { return registry.Scrape(); });
    if (!started.ok()) {
      Code code = started.error().code();
      return fail(Error(started.error()).Context("metrics"),
                  code == Code::kInvalidArgument ? 2 : code == Code::kAlreadyExists ? kExitUnavailable : 1);
    }
    endpoint = std::move(*started);
    spdlog::info("metrics: http://{}/metrics", endpoint->address());
  }

  rpc::Dispatcher dispatcher;
  RegisterSessionMethods(dispatcher, *served);
  RegisterDaemonMethods(dispatcher, DaemonInfo{Version(), socket, state_dir, ""});

  rpc::ServerOptions opts;
  opts.socket_path = socket;
  opts.group = group;
  opts.quick_workers = quick_workers;
  opts.blocking_workers = blocking_workers;
  opts.shutdown_grace = std::chrono::milliseconds(grace_ms);
  if (*activated) opts.listener = std::move((*activated)->fd);
  const rpc::ManagerNotifier& notify = *notifier;
  opts.on_ready = [&notify, socket] {
    Status st = notify.Send("READY=1\nSTATUS=serving JSON-RPC on " + socket);
    if (!st.ok()) spdlog::warn("{}", st.ToString());
  };
  opts.on_shutdown = [&notify, svc = service.get()] {
    Status st = notify.Send("STOPPING=1\nSTATUS=shutting down: finishing running calls");
    if (!st.ok()) spdlog::warn("{}", st.ToString());
    svc->BeginShutdown();
  };
  auto server = rpc::Server::Create(std::move(opts), dispatcher);
  if (!server.ok()) {
    Code code = server.error().code();
    return fail(server.error(), code == Code::kAlreadyExists ? kExitUnavailable : 1);
  }
  spdlog::info("speculad {} pid {} state dir {}", Version(), ::getpid(), state_dir);
  if (Status st = (*server)->Run(); !st.ok()) {
    // Calls still running past the grace period: leave without joining
    // them. The state stays consistent because every commit is durable
    // step by step (a crash at any point is recovered at the next start).
    spdlog::error("{}; exiting anyway", st.ToString());
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }
  return 0;
}

}  // namespace specula::service
