// The JSON-RPC methods of docs/api.md bound to a SessionService: each handler
// decodes its params strictly (api::DecodeParams), calls the service, and
// encodes the reply (api::ToJson).
#pragma once

#include <string>

#include "runtime/rpc/dispatcher.h"
#include "runtime/service/session_service.h"

namespace specula::service {

// What daemon.version reports.
struct DaemonInfo {
  std::string version;
  std::string socket;
  std::string state_dir;
  std::string started;  // RFC 3339 UTC; "" = now
};

// session.*, action.*, branch.*, checkpoint.*. `service` must outlive the
// dispatcher's use.
void RegisterSessionMethods(rpc::Dispatcher& dispatcher, SessionService& service);
// daemon.ping, daemon.version, daemon.methods.
void RegisterDaemonMethods(rpc::Dispatcher& dispatcher, DaemonInfo info);

}  // namespace specula::service
