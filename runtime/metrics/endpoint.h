// The metrics endpoint: an HTTP/1.0 responder for GET /metrics on its own
// thread, so a scrape never waits behind the JSON-RPC loop or a worker
// (and a slow scraper never holds either back). One connection at a time,
// each with a 2 s deadline: Prometheus scrapes one target serially, and
// a stalled client only delays the next scrape. Off unless speculad gets
// --metrics-listen (docs/operations.md).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::metrics {

class Endpoint {
 public:
  // `listen`: "HOST:PORT" (an IPv4 address, "localhost", or "[IPv6]";
  // PORT 0 picks a free port) or an absolute path for a Unix socket (0660
  // root-owned; a stale socket file there is replaced). `render` makes the
  // body of each scrape (Registry::Scrape), on the endpoint's thread.
  static Result<std::unique_ptr<Endpoint>> Start(const std::string& listen, std::function<std::string()> render);
  // Stops the thread and closes the socket (removing a Unix socket file).
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Where it listens: "127.0.0.1:9464" (the real port when 0 was asked
  // for) or the socket path.
  const std::string& address() const { return address_; }

 private:
  Endpoint() = default;
  void Serve();
  void Answer(int conn);

  UniqueFd listen_fd_, stop_fd_;
  std::string address_, unix_path_;
  std::function<std::string()> render_;
  std::thread thread_;  // last: joined before the fds close
};

// The response to one request (its bytes up to the blank line): 200 with
// the body for GET /metrics (HEAD: no body), 404 for another path, 405 for
// another method, 400 for what is not HTTP. Exposed for unit tests.
std::string HttpResponse(const std::string& request, const std::function<std::string()>& render);

}  // namespace specula::metrics
