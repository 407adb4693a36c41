// The two systemd protocols speculad speaks, implemented here rather than
// by linking libsystemd (a dependency for ~100 lines, and one more library
// in a root daemon):
//   - socket activation (sd_listen_fds(3)): the manager binds
//     /run/specula/speculad.sock itself (packaging/speculad.socket) and
//     passes it as fd 3 with LISTEN_PID=<our pid> and LISTEN_FDS=1;
//   - readiness notification (sd_notify(3)): with Type=notify the manager
//     sets NOTIFY_SOCKET, a datagram socket (a path, or "@name" in the
//     abstract namespace) that gets "READY=1" once calls are served and
//     "STOPPING=1" on SIGTERM.
// Both read and then unset their environment variables, so no sandbox
// or helper the daemon starts inherits them (a model-written command must
// not be able to tell the manager the daemon is ready or stopping).
// Both touch the environment: call them in main before any thread exists.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::rpc {

// The socket passed by the manager: listening, AF_UNIX, SOCK_STREAM, now
// close-on-exec and non-blocking.
struct ActivatedSocket {
  UniqueFd fd;
  std::string name;  // LISTEN_FDNAMES' entry ("" when not given)
  std::string path;  // the socket's bound path (getsockname), "" if unnamed
};

// nullopt when the environment passes no socket to this process (no
// LISTEN_PID or LISTEN_FDS, LISTEN_FDS=0, or a LISTEN_PID naming another
// process: the variables were meant for a parent). invalid_argument when it does but the variables are malformed,
// pass more than one fd, or fd 3 is not a listening AF_UNIX stream socket.
Result<std::optional<ActivatedSocket>> TakeActivatedSocket();

// A connection to the service manager's notification socket; inactive
// (every Send a no-op) when NOTIFY_SOCKET was not set.
class ManagerNotifier {
 public:
  // Reads and unsets NOTIFY_SOCKET. invalid_argument when it is set but is
  // neither an absolute path nor "@name", or too long for sun_path.
  static Result<ManagerNotifier> FromEnvironment();
  ManagerNotifier() = default;

  bool active() const { return fd_.valid(); }
  // One datagram of newline-separated assignments, e.g. "READY=1\nSTATUS=x".
  Status Send(std::string_view state) const;

 private:
  UniqueFd fd_;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

}  // namespace specula::rpc
