#include "runtime/rpc/dispatcher.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <exception>

namespace specula::rpc {

void Dispatcher::Register(std::string name, MethodKind kind, Handler handler) {
  auto [it, inserted] = methods_.emplace(std::move(name), Method{kind, std::move(handler)});
  if (!inserted) {
    spdlog::critical("method {} registered twice", it->first);
    std::abort();
  }
}

const Method* Dispatcher::Find(std::string_view name) const {
  auto it = methods_.find(name);
  return it == methods_.end() ? nullptr : &it->second;
}

std::vector<std::string> Dispatcher::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, method] : methods_) names.push_back(name);
  return names;
}

std::string Dispatcher::Invoke(const Request& req, const CallContext& ctx) const {
  const Method* method = Find(req.method);
  if (method == nullptr) return req.id ? MethodNotFoundReply(req, *this) : std::string();
  const RawId& id = req.raw_id;
  Result<Json> result = Error(Code::kInternal, "handler did not run");
  try {
    result = method->handler(req.params, ctx);
  } catch (const std::exception& e) {
    // Handlers return Errors; an exception here is a bug in a handler, but
    // one bad call must not take the daemon down.
    result = Error(Code::kInternal, std::string("unexpected exception: ") + e.what());
  }
  if (!result.ok()) {
    spdlog::warn("{} from pid {} uid {}: {}: {}", req.method, ctx.peer.pid, ctx.peer.uid,
                 CodeName(result.error().code()), result.error().ToString());
    return req.id ? EncodeError(id, result.error()) : std::string();
  }
  return req.id ? EncodeResult(id, *result) : std::string();
}

std::string MethodNotFoundReply(const Request& req, const Dispatcher& dispatcher) {
  (void)dispatcher;
  Json data{{"kind", CodeName(Code::kNotFound)}, {"errno", 0},
            {"hint", "methods are named session.*, action.*, branch.*, checkpoint.* and "
                     "daemon.*; daemon.methods lists them (docs/api.md)"}};
  return EncodeError(req.raw_id, kMethodNotFound,
                     "unknown method \"" + req.method + "\"", data);
}

}  // namespace specula::rpc
