#include "runtime/rpc/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>

#include "common/paths.h"

namespace specula::rpc {

std::string DefaultSocketPath() {
  if (const char* env = std::getenv("SPECULA_SOCKET"); env && *env) return env;
  return kDefaultSocket;
}

std::string StartDaemonHint(const std::string& socket_path) {
  if (socket_path == kDefaultSocket) {
    return "start it with `systemctl start speculad` (or run `speculad` as root)";
  }
  return "start it with `speculad --socket " + socket_path + "`, or point --socket / SPECULA_SOCKET at a running one";
}

Result<Client> Client::Connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(Code::kInvalidArgument, "socket path \"" + socket_path + "\" is empty or too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) {
      return Error(Code::kUnavailable, "speculad is not running (nothing listens on " + socket_path + ")", err)
          .WithHint(StartDaemonHint(socket_path));
    }
    if (err == EACCES || err == EPERM) {
      return Error(Code::kPermissionDenied, "no permission to connect to " + socket_path, err)
          .WithHint("run as root or as a member of the \"specula\" group");
    }
    return Error::FromErrno("connect " + socket_path, err);
  }
  return Client(std::move(fd), socket_path);
}

Status Client::SendAll(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error(Code::kUnavailable, std::string("speculad went away: send: ") + std::strerror(errno), errno)
          .WithHint(StartDaemonHint(socket_path_));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

std::optional<Error> Client::PendingRefusal() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in_.Append(std::string_view(buf, static_cast<size_t>(n)));
  }
  while (auto line = in_.NextLine()) {
    auto reply = DecodeReply(*line);
    if (reply.ok() && reply->id.is_null() && !reply->result.ok()) return reply->result.error();
  }
  return std::nullopt;
}

Result<Json> Client::Call(std::string_view method, const Json& params, std::chrono::milliseconds timeout) {
  return Call(method, params, timeout, NotificationHandler());
}

Result<api::CommitResponse> Client::Call(const api::CommitRequest& request, std::chrono::milliseconds timeout,
                                         const std::function<void(const api::OutputChunk&)>& on_chunk) {
  NotificationHandler notes = [&on_chunk](std::string_view method, const Json& params) {
    if (method != api::OutputChunk::kMethod || !on_chunk) return;
    // A chunk this client cannot read is skipped: the reply still has it all.
    auto chunk = api::FromJson<api::OutputChunk>(params, method);
    if (chunk.ok()) on_chunk(*chunk);
  };
  SPECULA_ASSIGN_OR_RETURN(Json reply, Call(api::CommitRequest::kMethod, api::ToJson(request), timeout, notes));
  return api::FromJson<api::CommitResponse>(reply, api::CommitRequest::kMethod);
}

Result<Json> Client::Call(std::string_view method, const Json& params, std::chrono::milliseconds timeout,
                          const NotificationHandler& on_notification) {
  if (!fd_) return Error(Code::kFailedPrecondition, "client connection is closed");
  int64_t id = next_id_++;
  std::string line = EncodeRequest(id, method, params);
  line += '\n';
  if (Status sent = SendAll(line); !sent.ok()) {
    // A daemon that refuses us (permission, too many connections) writes one
    // error line and closes, possibly before our request went out: that
    // line, not the broken pipe, is the answer.
    if (auto refusal = PendingRefusal()) return *refusal;
    return sent.error();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    while (auto reply_line = in_.NextLine()) {
      if (reply_line->empty()) continue;
      SPECULA_ASSIGN_OR_RETURN(Reply reply, DecodeReply(*reply_line));
      if (reply.notification) {  // not a reply to anyone
        if (on_notification) on_notification(reply.method, reply.params);
        continue;
      }
      // id null carries errors the daemon could not attribute to a request
      // (refused connection, oversized message): they are ours too.
      if (reply.id == Json(id) || (reply.id.is_null() && !reply.result.ok())) {
        return std::move(reply.result);
      }
    }
    if (in_.Overflowed()) {
      fd_.Reset();
      return Error(Code::kInternal, "daemon reply exceeds " + std::to_string(kMaxMessageBytes) + " bytes");
    }
    int wait_ms = -1;
    if (timeout.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        fd_.Reset();
        return Error(Code::kDeadlineExceeded, std::string(method) + ": no reply from speculad within " +
                                                  std::to_string(timeout.count()) + " ms");
      }
      wait_ms = static_cast<int>(left.count());
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return Error::FromErrno("poll");
    if (pr == 0) continue;  // the deadline check above reports it
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      if (auto refusal = PendingRefusal()) return *refusal;
      fd_.Reset();
      return Error(Code::kUnavailable, std::string(method) + ": speculad closed the connection before replying " +
                                           "(did it stop or crash? see its log)", err)
          .WithHint(StartDaemonHint(socket_path_));
    }
    in_.Append(std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace specula::rpc
