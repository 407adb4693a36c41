// The client side of speculad's socket, used by the CLI, the tests and the
// agents: connect, then blocking calls, one at a time per Client, either
// typed (a request of the wire contract, runtime/api/wire.h, in; its
// response out) or as raw JSON. Daemon errors come back as the Error the
// daemon built (same Code, message, hint).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"
#include "runtime/api/wire.h"
#include "runtime/rpc/framing.h"
#include "runtime/rpc/protocol.h"

namespace specula::rpc {

// $SPECULA_SOCKET when set, else /run/specula/speculad.sock.
std::string DefaultSocketPath();

// What a call does with the daemon's notifications that arrive while it
// waits for its reply (e.g. action.output, docs/api.md "Streaming output").
using NotificationHandler = std::function<void(std::string_view method, const Json& params)>;

class Client {
 public:
  // Fails with kUnavailable (and a hint on how to start it) when no daemon
  // listens at socket_path, kPermissionDenied when the socket is not ours.
  static Result<Client> Connect(const std::string& socket_path);

  // Sends one request and waits for its reply. timeout 0 waits forever
  // (commit may legitimately take minutes). Fails with the daemon's error,
  // or kUnavailable if the daemon goes away, kDeadlineExceeded on timeout
  // (the connection is then unusable: a late reply would be misattributed).
  Result<Json> Call(std::string_view method, const Json& params = Json::object(),
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // The same, handing every notification that arrives before the reply to
  // on_notification (in arrival order, on this thread); Call skips them.
  Result<Json> Call(std::string_view method, const Json& params, std::chrono::milliseconds timeout,
                    const NotificationHandler& on_notification);

  // A typed call: the request's method and params, the reply decoded.
  template <api::WireRequest Request>
  Result<typename Request::Response> Call(const Request& request,
                                          std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    SPECULA_ASSIGN_OR_RETURN(Json reply, Call(Request::kMethod, api::ToJson(request), timeout));
    return api::FromJson<typename Request::Response>(reply, Request::kMethod);
  }
  // A streaming commit (request.stream set by the caller): each
  // action.output notification before the reply goes to on_chunk.
  Result<api::CommitResponse> Call(const api::CommitRequest& request, std::chrono::milliseconds timeout,
                                   const std::function<void(const api::OutputChunk&)>& on_chunk);

  const std::string& socket_path() const { return socket_path_; }
  int fd() const { return fd_.get(); }

 private:
  Client(UniqueFd fd, std::string socket_path)
      : fd_(std::move(fd)), socket_path_(std::move(socket_path)) {}
  Status SendAll(std::string_view data);
  // An error line with id null already received (the daemon's refusal).
  std::optional<Error> PendingRefusal();

  UniqueFd fd_;
  std::string socket_path_;
  LineBuffer in_{kMaxMessageBytes};
  int64_t next_id_ = 1;
};

// The hint shown whenever the daemon cannot be reached.
std::string StartDaemonHint(const std::string& socket_path);

}  // namespace specula::rpc
