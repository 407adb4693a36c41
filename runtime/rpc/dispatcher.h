// The method table of speculad: method name -> handler. Filled once at
// start-up, then only read (from the I/O thread for lookups and from worker
// threads for calls), so it needs no lock.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "runtime/rpc/auth.h"
#include "runtime/rpc/protocol.h"

namespace specula::rpc {

// Which worker pool runs a method. Blocking methods (commit, create, mount)
// can take minutes; they get their own pool so that quick reads (list, show,
// ping) keep answering while every blocking worker is busy.
enum class MethodKind { kQuick, kBlocking };

// A notification to the caller: a method name and its params, sent on the
// caller's connection. Sent in call order, and all before the call's reply.
using Notifier = std::function<void(std::string_view method, const Json& params)>;

struct CallContext {
  PeerCredentials peer;
  // Empty when the transport cannot notify (the call is a notification
  // itself, or a test calls the handler directly). Valid only until the
  // handler returns; a caller gone meanwhile makes it a no-op.
  Notifier notify;
};

using Handler = std::function<Result<Json>(const Json& params, const CallContext& ctx)>;

struct Method {
  MethodKind kind = MethodKind::kQuick;
  Handler handler;
};

class Dispatcher {
 public:
  // A name registered twice is a programming error (aborts).
  void Register(std::string name, MethodKind kind, Handler handler);
  const Method* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

  // Runs the handler of req.method and returns the reply line (without
  // '\n'), or "" for a notification. Never throws: an exception escaping a
  // handler becomes an internal error reply.
  std::string Invoke(const Request& req, const CallContext& ctx) const;

 private:
  std::map<std::string, Method, std::less<>> methods_;
};

// The reply to a request whose method is not registered (-32601), naming the
// method families so the caller can spot a typo.
std::string MethodNotFoundReply(const Request& req, const Dispatcher& dispatcher);

}  // namespace specula::rpc
