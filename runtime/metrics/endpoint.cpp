#include "runtime/metrics/endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace specula::metrics {
namespace {

constexpr size_t kMaxRequest = 8192;
constexpr auto kConnectionDeadline = std::chrono::seconds(2);

std::string Reply(const char* status, const std::string& type, const std::string& body, bool with_body = true) {
  std::string out = std::string("HTTP/1.0 ") + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (with_body) out += body;
  return out;
}

Error BadListen(const std::string& listen, const std::string& why) {
  return Error(Code::kInvalidArgument, "--metrics-listen \"" + listen + "\": " + why)
      .WithHint("give HOST:PORT (e.g. 127.0.0.1:9464) or an absolute path for a Unix socket");
}

// A bind failure as what it says about the address: taken by another
// process, or not one of this machine's.
Error BindError(const std::string& what) {
  int err = errno;
  if (err == EADDRINUSE) {
    return Error(Code::kAlreadyExists, what + ": " + std::strerror(err), err)
        .WithHint("another process listens there: pick another --metrics-listen");
  }
  if (err == EADDRNOTAVAIL) return Error(Code::kInvalidArgument, what + ": " + std::strerror(err), err);
  return Error::FromErrno(what, err);
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return BadListen(path, "path too long for a Unix socket");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error(Code::kAlreadyExists, path + " exists and is not a socket");
    // The state dir lock (one daemon per state dir) does not cover this
    // path; a live endpoint answers a connect.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      return Error(Code::kAlreadyExists, "another process serves " + path);
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::FromErrno("remove stale socket " + path);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return BindError("bind metrics socket " + path);
  }
  // Metrics name sessions: not for everyone on the machine.
  if (::chmod(path.c_str(), 0660) != 0) return Error::FromErrno("chmod " + path);
  if (::listen(fd.get(), 16) != 0) return Error::FromErrno("listen " + path);
  return fd;
}

Result<UniqueFd> ListenTcp(const std::string& listen, std::string& address) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return BadListen(listen, "no HOST:PORT");
  }
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return BadListen(listen, ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(res, ::freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // restart within TIME_WAIT
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) return BindError("bind metrics address " + listen);
  if (::listen(fd.get(), 16) != 0) return Error::FromErrno("listen " + listen);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) return Error::FromErrno("getsockname");
  char ip[INET6_ADDRSTRLEN] = {};
  uint16_t bound_port = 0;
  if (bound.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&bound);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    bound_port = ntohs(a->sin6_port);
    address = std::string("[") + ip + "]:" + std::to_string(bound_port);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&bound);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    bound_port = ntohs(a->sin_port);
    address = std::string(ip) + ":" + std::to_string(bound_port);
  }
  return fd;
}

}  // namespace

std::string HttpResponse(const std::string& request, const std::function<std::string()>& render) {
  std::string line = request.substr(0, request.find_first_of("\r\n"));
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    return Reply("400 Bad Request", "text/plain", "bad request\n");
  }
  std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET" && method != "HEAD") return Reply("405 Method Not Allowed", "text/plain", "GET only\n");
  std::string path = target.substr(0, target.find('?'));
  if (path != "/metrics") return Reply("404 Not Found", "text/plain", "the metrics are at /metrics\n");
  return Reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(), method == "GET");
}

Result<std::unique_ptr<Endpoint>> Endpoint::Start(const std::string& listen, std::function<std::string()> render) {
  std::unique_ptr<Endpoint> e(new Endpoint());
  e->render_ = std::move(render);
  if (!listen.empty() && listen[0] == '/') {
    SPECULA_ASSIGN_OR_RETURN(e->listen_fd_, ListenUnix(listen));
    e->address_ = e->unix_path_ = listen;
  } else {
    SPECULA_ASSIGN_OR_RETURN(e->listen_fd_, ListenTcp(listen, e->address_));
  }
  e->stop_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!e->stop_fd_) return Error::FromErrno("eventfd");
  e->thread_ = std::thread([raw = e.get()] { raw->Serve(); });
  return e;
}

Endpoint::~Endpoint() {
  uint64_t one = 1;
  if (stop_fd_) {
    ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
    (void)n;  // an eventfd write only fails when the counter is saturated
  }
  if (thread_.joinable()) thread_.join();
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Endpoint::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (conn) Answer(conn.get());
  }
}

void Endpoint::Answer(int conn) {
  const auto deadline = std::chrono::steady_clock::now() + kConnectionDeadline;
  auto wait = [&](short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{conn, events, 0};
    int rc;
    do {
      rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
  };
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos) {
    if (request.size() > kMaxRequest || !wait(POLLIN)) return;
    char buf[2048];
    ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // HTTP/0.9-style clients end with EOF
    request.append(buf, static_cast<size_t>(n));
  }
  std::string response = HttpResponse(request, render_);
  size_t sent = 0;
  while (sent < response.size()) {
    ssize_t n = ::send(conn, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (!wait(POLLOUT)) return;
      continue;
    }
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(conn, SHUT_WR);
}

}  // namespace specula::metrics
