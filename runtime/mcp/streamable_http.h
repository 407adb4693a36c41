// MCP's Streamable HTTP transport (spec revision 2025-06-18, "Transports"),
// the second way `specula mcp` serves its Server (the first is stdio,
// ServeLines): one endpoint, POST /mcp with one JSON-RPC message per
// request. A notification or response gets 202; a request gets its reply as
// application/json, or, when the client accepts text/event-stream and asked
// for progress, as an SSE stream of the call's progress notifications ending
// with the reply. GET (a server-initiated stream) is 405: the server sends
// nothing unasked. DELETE ends the MCP session.
//
// Who may connect: only loopback addresses are served, and every request
// must carry `Authorization: Bearer <token>` (any local user can reach a
// loopback port, and a session runs commands); a browser page cannot pass
// that, and an Origin other than a loopback one is refused as well (DNS
// rebinding). The session id (Mcp-Session-Id) comes with the initialize
// reply and is required afterwards; one MCP session per server process.
//
// Threads: an accept loop (Serve) and one thread per connection, at most
// kMaxConnections; each connection carries one request (Connection: close).
// The Server's writer (Writer()) routes each outgoing line to the
// connection waiting for its id (a reply) or progress token.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/mcp/server.h"

namespace specula::mcp {

struct HttpOptions {
  std::string listen;  // "127.0.0.1:PORT", "localhost:PORT" or "[::1]:PORT"; PORT 0 picks one
  std::string token;   // the bearer token every request must carry (>= 16 characters)
  std::string path = "/mcp";
};

// A random bearer token: 32 hex digits from getrandom(2).
Result<std::string> NewToken();

class StreamableHttp {
 public:
  static constexpr size_t kMaxConnections = 32;

  static Result<std::unique_ptr<StreamableHttp>> Listen(HttpOptions options);
  // Joins every connection thread: the Server must be gone (its calls
  // answered) or idle first.
  ~StreamableHttp();
  StreamableHttp(const StreamableHttp&) = delete;
  StreamableHttp& operator=(const StreamableHttp&) = delete;

  // The writer to construct the Server with.
  Server::Writer Writer();
  // Accepts until signal_fd (a signalfd, or -1) is readable: kSignal.
  StopReason Serve(Server& server, int signal_fd);
  // "http://127.0.0.1:PORT/mcp": the real port when 0 was asked for.
  const std::string& url() const { return url_; }

 private:
  struct Waiter;
  StreamableHttp() = default;
  void Route(const std::string& line);
  void Handle(Server& server, UniqueFd conn);
  void Respond(int fd, Server& server, const std::string& head_bytes);

  HttpOptions options_;
  UniqueFd listen_fd_;
  std::string url_;
  std::mutex mu_;  // everything below
  std::map<std::string, std::shared_ptr<Waiter>> by_id_, by_token_;  // keys: the JSON text of the id / token
  std::string session_id_;   // "" until initialize
  bool session_ended_ = false;
  size_t connections_ = 0;
  uint64_t next_thread_ = 0;
  std::map<uint64_t, std::thread> threads_;  // one per connection
  std::vector<uint64_t> finished_;           // their keys once done, to join

};

}  // namespace specula::mcp
