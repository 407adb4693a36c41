#include "runtime/mcp/streamable_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/mcp/http_request.h"
#include "runtime/mcp/message.h"

namespace specula::mcp {

struct StreamableHttp::Waiter {
  std::condition_variable cv;
  std::deque<std::string> lines;  // progress notifications, then the reply
  bool done = false;              // the reply came (or the request was cancelled)
  std::string token_key;          // its entry in by_token_, "" for none
};

namespace {

constexpr int kReadTimeoutSeconds = 10;  // for the request itself, not for its reply

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool SameSecret(std::string_view a, std::string_view b) {
  // Constant time in the content: a token is not guessed byte by byte.
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

// http(s)://localhost, 127.0.0.1 or [::1], any port: a page served from the
// machine itself (the MCP Inspector's UI). Anything else, "null" included,
// is another site reaching a loopback port through the browser.
bool LoopbackOrigin(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.substr(0, scheme.size()) != scheme) continue;
    std::string_view host = origin.substr(scheme.size());
    if (!host.empty() && host.back() == '/') host.remove_suffix(1);
    if (host.rfind("[::1]", 0) == 0) {
      host.remove_prefix(5);
    } else {
      size_t colon = host.find(':');
      std::string_view name = host.substr(0, colon);
      if (name != "localhost" && name != "127.0.0.1") return false;
      host.remove_prefix(name.size());
    }
    if (host.empty()) return true;
    if (host.front() != ':' || host.size() == 1) return false;
    return std::all_of(host.begin() + 1, host.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  return false;
}

std::string JsonError(const Json& id, int code, const std::string& message) { return EncodeError(id, code, message); }

}  // namespace

Result<std::string> NewToken() {
  unsigned char raw[16];
  size_t got = 0;
  while (got < sizeof(raw)) {
    ssize_t n = ::getrandom(raw + got, sizeof(raw) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("getrandom");
    got += static_cast<size_t>(n);
  }
  std::string hex;
  char b[3];
  for (unsigned char c : raw) {
    std::snprintf(b, sizeof(b), "%02x", c);
    hex += b;
  }
  return hex;
}

Result<std::unique_ptr<StreamableHttp>> StreamableHttp::Listen(HttpOptions options) {
  if (options.token.size() < 16) {
    return Error(Code::kInvalidArgument, "the MCP HTTP token must have at least 16 characters");
  }
  const std::string& l = options.listen;
  size_t colon = l.rfind(':');
  if (colon == std::string::npos || colon + 1 == l.size()) {
    return Error(Code::kInvalidArgument, "--listen " + l + ": want HOST:PORT").WithHint("e.g. --listen 127.0.0.1:8765");
  }
  std::string host = l.substr(0, colon), port_text = l.substr(colon + 1);
  int port = -1;
  if (port_text.size() <= 5 && std::all_of(port_text.begin(), port_text.end(), [](unsigned char c) { return c >= '0' && c <= '9'; })) port = std::stoi(port_text);
  if (port < 0 || port > 65535) return Error(Code::kInvalidArgument, "--listen " + l + ": bad port");
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (host == "127.0.0.1" || host == "localhost") {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
    host = "127.0.0.1";
  } else if (host == "[::1]") {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    return Error(Code::kInvalidArgument, "--listen " + l + ": only loopback addresses are served")
        .WithHint("use 127.0.0.1:PORT, localhost:PORT or [::1]:PORT; reach it from elsewhere through an SSH tunnel");
  }
  std::unique_ptr<StreamableHttp> t(new StreamableHttp());
  t->options_ = std::move(options);
  t->listen_fd_.Reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!t->listen_fd_) return Error::FromErrno("socket");
  int one = 1;
  (void)::setsockopt(t->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(t->listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    Error e = Error::FromErrno("bind " + l);
    if (e.sys_errno() == EADDRINUSE) e = Error(Code::kAlreadyExists, "bind " + l + ": address in use").WithHint("pick another port, or 0 for any free one");
    return e;
  }
  if (::listen(t->listen_fd_.get(), 64) != 0) return Error::FromErrno("listen " + l);
  sockaddr_storage got{};
  socklen_t got_len = sizeof(got);
  if (::getsockname(t->listen_fd_.get(), reinterpret_cast<sockaddr*>(&got), &got_len) != 0) {
    return Error::FromErrno("getsockname");
  }
  uint16_t real = got.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port)
                                           : ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
  t->url_ = "http://" + host + ":" + std::to_string(real) + t->options_.path;
  return t;
}

StreamableHttp::~StreamableHttp() {
  std::map<uint64_t, std::thread> threads;
  {
    std::unique_lock lock(mu_);
    // Connections waiting for a reply the Server will never send (it is gone).
    for (auto& [key, w] : by_id_) {
      w->done = true;
      w->cv.notify_all();
    }
    by_id_.clear();
    by_token_.clear();
    threads.swap(threads_);
  }
  for (auto& [key, t] : threads) {
    if (t.joinable()) t.join();
  }
}

Server::Writer StreamableHttp::Writer() {
  return [this](const std::string& line) { Route(line); };
}

void StreamableHttp::Route(const std::string& line) {
  Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  std::lock_guard lock(mu_);
  if (j.contains("id") && (j.contains("result") || j.contains("error"))) {
    auto it = by_id_.find(j["id"].dump());
    if (it == by_id_.end()) return;  // cancelled, or its connection is gone
    auto w = it->second;
    by_id_.erase(it);
    if (!w->token_key.empty()) by_token_.erase(w->token_key);
    w->lines.push_back(line);
    w->done = true;
    w->cv.notify_all();
    return;
  }
  if (j.value("method", "") == "notifications/progress" && j.contains("params") && j["params"].is_object() &&
      j["params"].contains("progressToken")) {
    auto it = by_token_.find(j["params"]["progressToken"].dump());
    if (it == by_token_.end()) return;
    it->second->lines.push_back(line);
    it->second->cv.notify_all();
  }
  // Anything else the server says unasked has no stream to go to (GET is 405).
}

StopReason StreamableHttp::Serve(Server& server, int signal_fd) {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
    int n = ::poll(fds, signal_fd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StopReason::kReadError;
    if (signal_fd >= 0 && (fds[1].revents & POLLIN)) return StopReason::kSignal;
    if ((fds[0].revents & POLLIN) == 0) continue;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;  // the client went away between poll and accept
    std::lock_guard lock(mu_);
    if (connections_ >= kMaxConnections) {
      std::string body = "too many connections\n";
      (void)SendAll(conn.get(), HttpHead(503, "text/plain", body.size()) + body);
      continue;
    }
    ++connections_;
    // Threads of finished connections are joined here, lazily (each said
    // so as its last step under the lock).
    for (uint64_t key : finished_) {
      auto it = threads_.find(key);
      if (it == threads_.end()) continue;
      it->second.join();
      threads_.erase(it);
    }
    finished_.clear();
    const uint64_t key = next_thread_++;
    threads_[key] = std::thread([this, &server, key, c = std::move(conn)]() mutable {
      Handle(server, std::move(c));
      std::lock_guard l(mu_);
      --connections_;
      finished_.push_back(key);
    });
  }
}

void StreamableHttp::Handle(Server& server, UniqueFd conn) {
  timeval tv{kReadTimeoutSeconds, 0};
  (void)::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string bytes;
  char buf[16384];
  HttpParse head;
  for (;;) {
    head = ParseHttpHead(bytes, kMaxMessageBytes);
    if (head.state != HttpParse::State::kNeedMore) break;
    ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // gone, or too slow
    bytes.append(buf, static_cast<size_t>(n));
  }
  if (head.state == HttpParse::State::kBad) {
    (void)SendAll(conn.get(), HttpHead(head.status, "text/plain", head.reason.size() + 1) + head.reason + "\n");
    return;
  }
  while (bytes.size() < head.body_offset + head.request.content_length) {
    ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.append(buf, static_cast<size_t>(n));
  }
  Respond(conn.get(), server, bytes);
}

void StreamableHttp::Respond(int fd, Server& server, const std::string& bytes) {
  HttpParse head = ParseHttpHead(bytes, kMaxMessageBytes);
  const HttpRequest& req = head.request;
  const std::string body = bytes.substr(head.body_offset, req.content_length);
  std::map<std::string, std::string> extra;
  auto send = [&](int status, const std::string& type, const std::string& text) {
    (void)SendAll(fd, HttpHead(status, type, text.size(), extra) + text);
  };
  auto plain = [&](int status, const std::string& why) { send(status, "text/plain", why + "\n"); };
  std::string path = req.target.substr(0, req.target.find('?'));
  if (path != options_.path) return plain(404, "not found: the MCP endpoint is " + options_.path);
  std::string origin = req.Header("origin");
  if (!origin.empty() && !LoopbackOrigin(origin)) return plain(403, "origin " + origin + " may not use this server");
  if (!SameSecret(req.Header("authorization"), "Bearer " + options_.token)) {
    extra["WWW-Authenticate"] = "Bearer";
    return plain(401, "send Authorization: Bearer <token> (the token `specula mcp --listen` printed or wrote)");
  }
  const std::string sid = req.Header("mcp-session-id");
  if (req.method == "DELETE") {
    std::lock_guard lock(mu_);
    if (sid.empty() || sid != session_id_ || session_ended_) return plain(404, "no such MCP session");
    session_ended_ = true;
    return plain(200, "session ended");
  }
  if (req.method != "POST") {
    extra["Allow"] = "POST, DELETE";
    return plain(405, "POST a JSON-RPC message (this server opens no stream of its own)");
  }
  std::string type = req.Header("content-type");
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  if (type.rfind("application/json", 0) != 0) return plain(415, "Content-Type must be application/json");
  const std::string accept = req.Header("accept");
  if (!AcceptsType(accept, "application/json") && !AcceptsType(accept, "text/event-stream")) {
    return plain(406, "Accept application/json or text/event-stream");
  }
  if (std::string v = req.Header("mcp-protocol-version"); !v.empty() && NegotiateVersion(v) != v) {
    return plain(400, "unsupported MCP-Protocol-Version " + v);
  }
  Parsed parsed = ParseMessage(body);
  if (parsed.error) {
    return send(400, "application/json", JsonError(parsed.error->id, parsed.error->code, parsed.error->message));
  }
  Message& m = *parsed.message;
  bool initialize = m.kind == Message::Kind::kRequest && m.method == "initialize";
  {
    std::lock_guard lock(mu_);
    if (initialize) {
      if (!session_id_.empty()) {
        return send(400, "application/json",
                    JsonError(m.id, kInvalidRequest,
                              "this server already has its MCP session: one per `specula mcp --listen` process"));
      }
      auto id = NewToken();
      if (!id.ok()) return plain(503, id.error().ToString());
      session_id_ = *id;
    } else if (sid.empty()) {
      return plain(400, "Mcp-Session-Id missing: initialize first");
    } else if (sid != session_id_ || session_ended_) {
      return plain(404, "no such MCP session: initialize a new one");
    }
    extra["Mcp-Session-Id"] = session_id_;
  }
  if (m.kind != Message::Kind::kRequest) {
    if (m.method == "notifications/cancelled" && m.params.contains("requestId")) {
      // The Server drops a cancelled call's reply: let its connection go.
      std::lock_guard lock(mu_);
      if (auto it = by_id_.find(m.params["requestId"].dump()); it != by_id_.end()) {
        it->second->done = true;
        it->second->cv.notify_all();
        if (!it->second->token_key.empty()) by_token_.erase(it->second->token_key);
        by_id_.erase(it);
      }
    }
    server.HandleLine(body);
    return send(202, "", "");
  }
  auto w = std::make_shared<Waiter>();
  std::optional<Json> token = ProgressToken(m.params);
  const bool stream = token.has_value() && AcceptsType(accept, "text/event-stream");
  {
    std::lock_guard lock(mu_);
    const std::string key = m.id.dump();
    if (by_id_.count(key) != 0) {
      return send(409, "application/json", JsonError(m.id, kInvalidRequest, "a request with this id is running"));
    }
    by_id_[key] = w;
    if (stream && by_token_.count(token->dump()) == 0) {
      w->token_key = token->dump();
      by_token_[w->token_key] = w;
    }
  }
  server.HandleLine(body);
  bool open = true;
  if (stream) {
    open = SendAll(fd, HttpHead(200, "text/event-stream", std::nullopt,
                                [&] {
                                  auto h = extra;
                                  h["Cache-Control"] = "no-cache";
                                  return h;
                                }()));
  }
  std::unique_lock lock(mu_);
  for (;;) {
    w->cv.wait(lock, [&] { return !w->lines.empty() || w->done; });
    while (!w->lines.empty()) {
      std::string line = std::move(w->lines.front());
      w->lines.pop_front();
      const bool last = w->done && w->lines.empty();
      lock.unlock();
      if (stream) {
        // A client that went away is not a cancellation (the spec): the
        // call runs on, its lines are just not sent.
        if (open) open = SendAll(fd, "event: message\ndata: " + line + "\n\n");
      } else if (last) {
        send(200, "application/json", line);
      }
      lock.lock();
    }
    if (w->done) return;
  }
}

}  // namespace specula::mcp
