#include "runtime/rpc/systemd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace specula::rpc {
namespace {

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

// getenv as a string, "" when unset.
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// A whole decimal number (no sign, no spaces, no trailing text).
std::optional<long> ParseDecimal(std::string_view s) {
  long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

Result<int> SocketOption(int fd, int option, const char* name) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) {
    return Error::FromErrno(std::string("getsockopt ") + name + " on fd " + std::to_string(fd));
  }
  return value;
}

Error BadActivation(std::string what) {
  return Error(Code::kInvalidArgument, "socket activation: " + std::move(what))
      .WithHint("the service manager must pass one listening Unix stream socket (ListenStream= in "
                "speculad.socket), or none: then speculad binds --socket itself");
}

// What fd 3 must be: a listening AF_UNIX SOCK_STREAM socket.
Status ValidateListener(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return BadActivation("fd " + std::to_string(fd) + ": " + std::strerror(errno));
  if (!S_ISSOCK(st.st_mode)) return BadActivation("fd " + std::to_string(fd) + " is not a socket");
  SPECULA_ASSIGN_OR_RETURN(int domain, SocketOption(fd, SO_DOMAIN, "SO_DOMAIN"));
  if (domain != AF_UNIX) {
    return BadActivation("fd " + std::to_string(fd) + " is not an AF_UNIX socket (domain " +
                         std::to_string(domain) + ")");
  }
  SPECULA_ASSIGN_OR_RETURN(int type, SocketOption(fd, SO_TYPE, "SO_TYPE"));
  if (type != SOCK_STREAM) {
    return BadActivation("fd " + std::to_string(fd) + " is not a stream socket (type " + std::to_string(type) +
                         (type == SOCK_DGRAM ? ", SOCK_DGRAM" : type == SOCK_SEQPACKET ? ", SOCK_SEQPACKET" : "") +
                         ")");
  }
  SPECULA_ASSIGN_OR_RETURN(int listening, SocketOption(fd, SO_ACCEPTCONN, "SO_ACCEPTCONN"));
  if (!listening) return BadActivation("fd " + std::to_string(fd) + " is a stream socket that is not listening");
  return Status::Ok();
}

}  // namespace

Result<std::optional<ActivatedSocket>> TakeActivatedSocket() {
  std::string pid_s = Env("LISTEN_PID"), fds_s = Env("LISTEN_FDS"), names = Env("LISTEN_FDNAMES");
  // As sd_listen_fds(unset_environment=1): whatever the outcome, no child
  // sees them.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  // As sd_listen_fds: without both variables nothing was passed.
  if (pid_s.empty() || fds_s.empty()) return std::optional<ActivatedSocket>();
  auto pid = ParseDecimal(pid_s);
  if (!pid) return BadActivation("LISTEN_PID=\"" + pid_s + "\" is not a process id");
  // Meant for another process (a parent that exec'ed us without cleaning
  // its environment): not ours to take, as in sd_listen_fds.
  if (*pid != ::getpid()) return std::optional<ActivatedSocket>();
  auto count = ParseDecimal(fds_s);
  if (!count) return BadActivation("LISTEN_FDS=\"" + fds_s + "\" is not a number");
  if (*count == 0) return std::optional<ActivatedSocket>();
  if (*count != 1) {
    return BadActivation("LISTEN_FDS=" + fds_s + ": speculad serves exactly one socket");
  }
  int fd = kListenFdsStart;
  SPECULA_TRY(ValidateListener(fd));
  // Ours from now on, and not to be inherited by what we exec (sandbox
  // helpers, CRIU): they must not accept the daemon's calls.
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return Error::FromErrno("socket activation: set FD_CLOEXEC on fd 3");
  }
  // The server's accept loop runs until EAGAIN.
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    return Error::FromErrno("socket activation: set O_NONBLOCK on fd 3");
  }
  ActivatedSocket out;
  out.fd.Reset(fd);
  out.name = names.substr(0, names.find(':'));
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && len > offsetof(sockaddr_un, sun_path) &&
      addr.sun_path[0] != '\0') {
    out.path.assign(addr.sun_path, strnlen(addr.sun_path, len - offsetof(sockaddr_un, sun_path)));
  }
  return std::optional<ActivatedSocket>(std::move(out));
}

Result<ManagerNotifier> ManagerNotifier::FromEnvironment() {
  std::string where = Env("NOTIFY_SOCKET");
  ::unsetenv("NOTIFY_SOCKET");
  ManagerNotifier n;
  if (where.empty()) return n;
  if (where[0] != '/' && where[0] != '@') {
    return Error(Code::kInvalidArgument, "NOTIFY_SOCKET=\"" + where + "\" is neither an absolute path nor @name");
  }
  if (where.size() >= sizeof(n.addr_.sun_path)) {
    return Error(Code::kInvalidArgument, "NOTIFY_SOCKET is longer than " +
                                             std::to_string(sizeof(n.addr_.sun_path) - 1) + " bytes");
  }
  n.addr_.sun_family = AF_UNIX;
  std::memcpy(n.addr_.sun_path, where.data(), where.size());
  // An abstract name: a leading NUL, and the length counts exactly the name.
  if (where[0] == '@') n.addr_.sun_path[0] = '\0';
  n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + where.size() + (where[0] == '/' ? 1 : 0));
  n.fd_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!n.fd_) return Error::FromErrno("socket for NOTIFY_SOCKET");
  return n;
}

Status ManagerNotifier::Send(std::string_view state) const {
  if (!active()) return Status::Ok();
  // One datagram, as sd_notify; it carries our credentials (SCM_CREDENTIALS
  // are added by the kernel when the receiver asked with SO_PASSCRED).
  ssize_t n;
  do {
    n = ::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr_),
                 addr_len_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::FromErrno("notify the service manager (NOTIFY_SOCKET)");
  return Status::Ok();
}

}  // namespace specula::rpc
