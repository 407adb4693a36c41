// speculad's JSON-RPC server: a Unix stream socket, one epoll loop on one
// thread for all I/O (accept, read, frame, decode, write), and two worker
// pools for method calls (quick and blocking, see MethodKind). Workers hand
// replies back through a queue and an eventfd, so the loop never waits on a
// method. A running call's notifications to its caller (CallContext::notify,
// e.g. a streaming commit's output) take the same queue, so only the loop
// writes to a connection and they precede the call's reply; a caller gone
// meanwhile makes them no-ops while the call runs on. SIGTERM/SIGINT arrive on a signalfd: the server stops accepting,
// stops reading, answers queued calls with "aborted", lets running calls
// finish (up to a grace period), flushes replies, and returns.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/rpc/dispatcher.h"

namespace specula::rpc {

struct ServerOptions {
  std::string socket_path;
  // An already listening socket to serve instead of binding socket_path
  // (socket activation, systemd.h). The server never chmods, chowns or
  // unlinks the file behind it: the service manager made it and keeps it.
  UniqueFd listener;
  // Besides root, members of this group may connect; a missing group means
  // root only. The socket file gets mode 0660 and this group.
  std::string group = "specula";
  size_t quick_workers = 4;
  size_t blocking_workers = 16;
  size_t max_connections = 16384;
  // Calls of one connection running or queued at once; further requests
  // of that connection wait unread (backpressure) until replies go out.
  size_t max_inflight_per_connection = 64;
  // Replies a slow reader has not taken yet; beyond this it is dropped.
  size_t max_pending_output = 64u << 20;
  std::chrono::milliseconds shutdown_grace{30000};
  // Called once on SIGTERM/SIGINT (on the I/O thread) before waiting for
  // running calls: the place to ask the service to abort long actions.
  std::function<void()> on_shutdown;
  // Called once when Run starts serving (on the I/O thread, before its
  // first accept): the place to tell a service manager the daemon is ready.
  std::function<void()> on_ready;
};

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it
// creates afterwards, so they are only ever read from the server's signalfd.
// Call first thing in main, before any thread exists.
Status BlockShutdownSignals();

class Server {
 public:
  // Binds and listens (refusing when another daemon serves the path; a stale
  // socket file is replaced) unless options.listener is given, creates the signalfd and the worker pools.
  static Result<std::unique_ptr<Server>> Create(ServerOptions options, const Dispatcher& dispatcher);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until SIGTERM/SIGINT or RequestStop, then shuts down as described
  // above. Fails (deadline_exceeded) if calls were still running after the
  // grace period: the caller must then exit without joining the workers.
  Status Run();
  // Thread-safe: makes Run shut down as on SIGTERM.
  void RequestStop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace specula::rpc
