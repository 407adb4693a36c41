#include "runtime/rpc/server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "runtime/rpc/framing.h"
#include "runtime/rpc/worker_pool.h"

namespace specula::rpc {
namespace {

// epoll tags for the fixed fds; connections get ids from kFirstConnection up.
constexpr uint64_t kListenTag = 1, kSignalTag = 2, kWakeTag = 3;
constexpr uint64_t kFirstConnection = 16;
constexpr size_t kReadChunk = 64 * 1024;

struct Connection {
  uint64_t id = 0;
  UniqueFd fd;
  PeerCredentials peer;
  LineBuffer in{kMaxMessageBytes};
  std::string out;
  size_t out_sent = 0;
  size_t inflight = 0;
  bool read_closed = false;        // peer shut its write side (or we stopped reading)
  bool close_after_flush = false;  // protocol violation: say why, then drop
  bool oversize_reported = false;
  uint32_t events = 0;             // current epoll interest
};

struct Completion {
  uint64_t conn;
  std::string line;  // "" for a notification: nothing to send
  // False for a notification a running call sends its caller: the call is
  // still in flight. A call's notifications and then its reply go through
  // the one queue, so they reach the connection in that order.
  bool ends_call = true;
};

// Whether a daemon at addr answers a ping within a second.
bool DaemonAnswers(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  std::string ping = EncodeRequest(0, "daemon.ping", Json::object()) + "\n";
  if (::send(probe.get(), ping.data(), ping.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(ping.size())) return false;
  pollfd pfd{probe.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, 1000);
  } while (rc < 0 && errno == EINTR);
  if (rc <= 0) return false;
  char buf[256];
  return ::recv(probe.get(), buf, sizeof(buf), 0) > 0;  // any reply (even a refusal) is a live daemon
}

Result<UniqueFd> BindListener(const ServerOptions& opts, std::optional<gid_t> group) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (opts.socket_path.empty() || opts.socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(Code::kInvalidArgument, "socket path \"" + opts.socket_path + "\" is empty or longer than " +
                                             std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, opts.socket_path.c_str(), opts.socket_path.size() + 1);
  std::filesystem::path parent = std::filesystem::path(opts.socket_path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Error::FromErrno("create socket directory " + parent.string(), ec.value());
  }
  struct stat st {};
  if (::lstat(opts.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(Code::kAlreadyExists, opts.socket_path + " exists and is not a socket")
          .WithHint("remove it or pass another --socket");
    }
    // A socket file is either a live daemon (refuse) or left by a crash
    // (replace). Connecting is not proof of life: processes forked from a
    // killed daemon may still hold its listening fd, so the queue accepts
    // but nobody answers. Only a reply to daemon.ping counts.
    if (DaemonAnswers(addr)) {
      return Error(Code::kAlreadyExists, "another speculad is already serving " + opts.socket_path)
          .WithHint("stop it first, or pass another --socket");
    }
    if (::unlink(opts.socket_path.c_str()) != 0 && errno != ENOENT) {
      return Error::FromErrno("remove stale socket " + opts.socket_path);
    }
    spdlog::info("replaced stale socket {}", opts.socket_path);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error::FromErrno("bind " + opts.socket_path);
  }
  // Set the file's access before listen(): until then connects are refused,
  // so there is no window with looser permissions.
  mode_t mode = group ? 0660 : 0600;
  if (group && ::chown(opts.socket_path.c_str(), 0, *group) != 0) {
    return Error::FromErrno("chown " + opts.socket_path);
  }
  if (::chmod(opts.socket_path.c_str(), mode) != 0) return Error::FromErrno("chmod " + opts.socket_path);
  if (::listen(fd.get(), SOMAXCONN) != 0) return Error::FromErrno("listen " + opts.socket_path);
  return fd;
}

}  // namespace

Status BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    return Error::FromErrno("pthread_sigmask", err);
  }
  // A client that vanishes must cost an EPIPE, not the daemon.
  ::signal(SIGPIPE, SIG_IGN);
  return Status::Ok();
}

struct Server::Impl {
  ServerOptions opts;
  const Dispatcher& dispatcher;
  std::optional<gid_t> group;
  UniqueFd listen_fd, signal_fd, wake_fd, epoll_fd, spare_fd;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns;
  uint64_t next_id = kFirstConnection;
  size_t total_inflight = 0;
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_deadline{};
  ino_t socket_ino = 0;
  bool owns_socket_file = true;  // false for an activated socket

  std::atomic<bool> stop_requested{false};
  std::mutex done_mu;
  std::deque<Completion> done;  // guarded by done_mu
  // Declared last: destroyed (joined) first, while everything a task touches
  // still exists.
  std::unique_ptr<WorkerPool> quick_pool, blocking_pool;

  Impl(ServerOptions o, const Dispatcher& d) : opts(std::move(o)), dispatcher(d) {}

  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd.get(), &one, sizeof(one));
    (void)n;  // only fails when the counter is saturated: a wakeup is pending anyway
  }
  void PostCompletion(uint64_t conn, std::string line, bool ends_call = true) {
    {
      std::lock_guard lock(done_mu);
      done.push_back({conn, std::move(line), ends_call});
    }
    Wake();
  }

  Status Watch(int fd, uint64_t tag, uint32_t events, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_fd.get(), op, fd, &ev) != 0) return Error::FromErrno("epoll_ctl");
    return Status::Ok();
  }

  void UpdateInterest(Connection& c) {
    uint32_t want = 0;
    if (!c.read_closed && !c.close_after_flush && !stopping && !AtCapacity(c)) want |= EPOLLIN | EPOLLRDHUP;
    if (c.out_sent < c.out.size()) want |= EPOLLOUT;
    if (want == c.events) return;
    c.events = want;
    if (!Watch(c.fd.get(), c.id, want, EPOLL_CTL_MOD).ok()) spdlog::warn("epoll_ctl MOD failed for connection {}", c.id);
  }

  void Close(uint64_t id) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    // In-flight calls keep running (a commit must complete); their replies
    // find no connection and are dropped.
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
    conns.erase(it);
  }

  // Writes what it can; false when the connection was closed.
  bool Flush(Connection& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) {
        spdlog::debug("connection {}: send: {}", c.id, std::strerror(errno));
        Close(c.id);
        return false;
      }
      c.out_sent += static_cast<size_t>(n);
    }
    if (c.out_sent == c.out.size()) {
      c.out.clear();
      c.out_sent = 0;
    }
    if (c.out.empty() && (c.close_after_flush || (c.read_closed && c.inflight == 0))) {
      Close(c.id);
      return false;
    }
    UpdateInterest(c);
    return true;
  }

  void Queue(Connection& c, const std::string& line) {
    if (c.out.size() - c.out_sent + line.size() > opts.max_pending_output) {
      spdlog::warn("connection {} (pid {}) does not read its replies; dropping it", c.id, c.peer.pid);
      Close(c.id);
      return;
    }
    c.out += line;
    c.out += '\n';
  }

  void Accept() {
    for (;;) {
      int raw = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (raw < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of fds: accept with the spare fd's slot and close at once,
          // else the pending connection keeps the listener readable forever.
          spdlog::warn("out of file descriptors with {} connections; refusing one", conns.size());
          spare_fd.Reset();
          UniqueFd victim(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
          victim.Reset();
          spare_fd.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) spdlog::warn("accept: {}", std::strerror(errno));
        return;
      }
      UniqueFd fd(raw);
      Result<PeerCredentials> peer = ReadPeerCredentials(fd.get());
      Status access = peer.ok() ? CheckPeerAccess(*peer, group, opts.group) : Status(peer.error());
      std::string refusal;
      if (!access.ok()) {
        Error err = access.error();
        spdlog::warn("refused connection: {}", err.ToString());
        refusal = EncodeError(nullptr, err) + "\n";
      } else if (conns.size() >= opts.max_connections) {
        refusal = EncodeError(nullptr, Error(Code::kResourceExhausted, "too many connections (" +
                                                                           std::to_string(conns.size()) + ")")) + "\n";
      }
      if (!refusal.empty()) {
        // Best effort: a small line fits the socket buffer of a fresh
        // connection. Then discard what the client already sent: closing
        // with unread data would reset the connection and could lose the
        // line before the client reads it.
        ssize_t n = ::send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL);
        ::shutdown(fd.get(), SHUT_WR);
        char sink[4096];
        while ((n = ::recv(fd.get(), sink, sizeof(sink), MSG_DONTWAIT)) > 0) {}
        continue;
      }
      auto c = std::make_unique<Connection>();
      c->id = next_id++;
      c->fd = std::move(fd);
      c->peer = std::move(*peer);
      c->events = EPOLLIN | EPOLLRDHUP;
      if (!Watch(c->fd.get(), c->id, c->events).ok()) {
        spdlog::warn("epoll_ctl ADD: {}", std::strerror(errno));
        continue;
      }
      spdlog::debug("connection {} from pid {} uid {}", c->id, c->peer.pid, c->peer.uid);
      conns.emplace(c->id, std::move(c));
    }
  }

  void HandleLine(Connection& c, std::string_view line) {
    if (line.empty()) return;  // tolerate blank keep-alive lines
    Decoded d = DecodeRequest(line);
    if (d.error) {
      Queue(c, EncodeError(d.error->raw_id, d.error->code, d.error->message));
      return;
    }
    Request& req = *d.request;
    const Method* method = dispatcher.Find(req.method);
    if (method == nullptr) {
      if (req.id) Queue(c, MethodNotFoundReply(req, dispatcher));
      return;
    }
    WorkerPool& pool = method->kind == MethodKind::kBlocking ? *blocking_pool : *quick_pool;
    CallContext ctx{c.peer, {}};
    uint64_t conn_id = c.id;
    RawId id = req.raw_id;
    bool has_id = req.id.has_value();
    // Only the I/O thread writes to a connection: a worker's notification
    // is queued like a reply (DrainCompletions drops it if the caller left).
    if (has_id) {
      ctx.notify = [this, conn_id](std::string_view name, const Json& params) {
        Json note{{"jsonrpc", "2.0"}, {"method", name}, {"params", params}};
        PostCompletion(conn_id, DumpJson(note), /*ends_call=*/false);
      };
    }
    bool queued = pool.Submit([this, conn_id, req = std::move(req), ctx = std::move(ctx), id, has_id](bool cancelled) {
      if (cancelled) {
        PostCompletion(conn_id, has_id ? EncodeError(id, Error(Code::kAborted, "speculad is shutting down; the call did not run")) : "");
        return;
      }
      PostCompletion(conn_id, dispatcher.Invoke(req, ctx));
    });
    if (!queued) {
      if (has_id) Queue(c, EncodeError(id, Error(Code::kAborted, "speculad is shutting down; the call did not run")));
      return;
    }
    ++c.inflight;
    ++total_inflight;
  }

  bool AtCapacity(const Connection& c) const { return c.inflight >= opts.max_inflight_per_connection; }

  // Handles buffered complete lines while the connection has room for more
  // calls in flight. A pipelining client is held back (its lines stay
  // buffered and EPOLLIN is off) rather than refused; the rest is handled
  // as replies go out. False when the connection was closed.
  bool ProcessLines(Connection& c) {
    uint64_t id = c.id;
    while (!c.close_after_flush && !AtCapacity(c)) {
      auto line = c.in.NextLine();
      if (!line) {
        if (c.in.Overflowed()) c.close_after_flush = true;
        break;
      }
      if (line->size() > kMaxMessageBytes) {
        c.close_after_flush = true;
        break;
      }
      HandleLine(c, *line);
      if (!conns.contains(id)) return false;
    }
    if (c.close_after_flush && !c.oversize_reported) {
      c.oversize_reported = true;
      spdlog::warn("connection {} (pid {}) sent a message over {} bytes; dropping it", id, c.peer.pid,
                   kMaxMessageBytes);
      Queue(c, EncodeError(nullptr, kInvalidRequest,
                           "message exceeds " + std::to_string(kMaxMessageBytes) + " bytes; closing the connection"));
      if (!conns.contains(id)) return false;
    }
    return true;
  }

  void Read(Connection& c, uint32_t events) {
    char buf[kReadChunk];
    uint64_t id = c.id;
    // Bounded per wakeup so one busy client cannot starve the others
    // (epoll is level-triggered: the rest is read on the next round).
    for (int round = 0; round < 16 && !c.read_closed && !c.close_after_flush && !AtCapacity(c); ++round) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        // EOF: the client may have half-closed after its last request; its
        // replies are still sent. A reset drops everything.
        if (n < 0) { Close(id); return; }
        c.read_closed = true;
        break;
      }
      c.in.Append(std::string_view(buf, static_cast<size_t>(n)));
      if (!ProcessLines(c)) return;
    }
    if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) c.read_closed = true;
    Flush(c);
  }

  void DrainCompletions() {
    uint64_t counter;
    ssize_t n = ::read(wake_fd.get(), &counter, sizeof(counter));
    (void)n;
    if (stop_requested.load()) BeginShutdown();
    std::deque<Completion> batch;
    {
      std::lock_guard lock(done_mu);
      batch.swap(done);
    }
    for (auto& item : batch) {
      if (!item.ends_call) {
        auto it = conns.find(item.conn);
        if (it == conns.end()) continue;  // the client left mid-call: the call runs on
        Queue(*it->second, item.line);
        if (conns.contains(item.conn)) Flush(*it->second);
        continue;
      }
      --total_inflight;
      auto it = conns.find(item.conn);
      if (it == conns.end()) continue;  // the client left mid-call
      Connection& c = *it->second;
      --c.inflight;
      if (!item.line.empty()) Queue(c, item.line);
      if (!conns.contains(item.conn)) continue;
      if (!stopping && !ProcessLines(c)) continue;  // room again for held-back lines
      Flush(c);
    }
  }

  void BeginShutdown() {
    if (stopping) return;
    stopping = true;
    stop_deadline = std::chrono::steady_clock::now() + opts.shutdown_grace;
    spdlog::info("shutting down: no new connections; {} calls in flight", total_inflight);
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, listen_fd.get(), nullptr);
    listen_fd.Reset();
    // Remove the socket only if it is still ours (a new daemon may have
    // replaced a file we thought stale).
    struct stat st {};
    if (owns_socket_file && ::lstat(opts.socket_path.c_str(), &st) == 0 && st.st_ino == socket_ino) {
      ::unlink(opts.socket_path.c_str());
    }
    if (opts.on_shutdown) opts.on_shutdown();
    quick_pool->CancelPending();
    blocking_pool->CancelPending();
    for (auto& [id, c] : conns) UpdateInterest(*c);
  }

  bool FullyDrained() const {
    if (total_inflight != 0) return false;
    for (const auto& [id, c] : conns) {
      if (c->out_sent < c->out.size()) return false;
    }
    return true;
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::Create(ServerOptions options, const Dispatcher& dispatcher) {
  SPECULA_TRY(BlockShutdownSignals());
  auto impl = std::make_unique<Impl>(std::move(options), dispatcher);
  impl->group = LookupGroup(impl->opts.group);
  if (!impl->group) spdlog::info("group \"{}\" does not exist: only root may connect", impl->opts.group);
  if (impl->opts.listener) {
    impl->listen_fd = std::move(impl->opts.listener);
    impl->owns_socket_file = false;
  } else {
    SPECULA_ASSIGN_OR_RETURN(impl->listen_fd, BindListener(impl->opts, impl->group));
    struct stat st {};
    if (::stat(impl->opts.socket_path.c_str(), &st) == 0) impl->socket_ino = st.st_ino;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  impl->signal_fd.Reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!impl->signal_fd) return Error::FromErrno("signalfd");
  impl->wake_fd.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!impl->wake_fd) return Error::FromErrno("eventfd");
  impl->epoll_fd.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epoll_fd) return Error::FromErrno("epoll_create1");
  impl->spare_fd.Reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  SPECULA_TRY(impl->Watch(impl->listen_fd.get(), kListenTag, EPOLLIN));
  SPECULA_TRY(impl->Watch(impl->signal_fd.get(), kSignalTag, EPOLLIN));
  SPECULA_TRY(impl->Watch(impl->wake_fd.get(), kWakeTag, EPOLLIN));
  impl->quick_pool = std::make_unique<WorkerPool>("quick", impl->opts.quick_workers);
  impl->blocking_pool = std::make_unique<WorkerPool>("blocking", impl->opts.blocking_workers);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::RequestStop() {
  impl_->stop_requested = true;
  impl_->Wake();
}

Status Server::Run() {
  Impl& s = *impl_;
  spdlog::info("serving JSON-RPC on {}{}", s.opts.socket_path, s.owns_socket_file ? "" : " (socket activation)");
  if (s.opts.on_ready) s.opts.on_ready();
  epoll_event events[256];
  for (;;) {
    int timeout = -1;
    if (s.stopping) {
      if (s.FullyDrained()) break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s.stop_deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return Error(Code::kDeadlineExceeded, std::to_string(s.total_inflight) +
                                                  " calls still running after the shutdown grace period");
      }
      timeout = static_cast<int>(std::min<int64_t>(left.count(), 1000));
    }
    int n = ::epoll_wait(s.epoll_fd.get(), events, 256, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        if (!s.stopping) s.Accept();
      } else if (tag == kSignalTag) {
        signalfd_siginfo info{};
        while (::read(s.signal_fd.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
          spdlog::info("received {}", ::strsignal(static_cast<int>(info.ssi_signo)));
        }
        s.BeginShutdown();
      } else if (tag == kWakeTag) {
        s.DrainCompletions();
      } else {
        auto it = s.conns.find(tag);
        if (it == s.conns.end()) continue;  // closed earlier in this batch
        Connection& c = *it->second;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          if (s.stopping || c.read_closed) {
            if (events[i].events & (EPOLLHUP | EPOLLERR)) { s.Close(tag); continue; }
          } else {
            s.Read(c, events[i].events);
            if (!s.conns.contains(tag)) continue;
          }
        }
        if (events[i].events & EPOLLOUT) s.Flush(c);
      }
    }
  }
  spdlog::info("stopped: all calls finished and replies sent");
  return Status::Ok();
}

}  // namespace specula::rpc
