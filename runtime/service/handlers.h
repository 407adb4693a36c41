// The JSON-RPC methods of docs/api.md, bound to a SessionService: each
// handler validates and decodes its params (rpc::Params), calls the service,
// and encodes the result (service_json.h).
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
  std::string started;  // RFC 3339 UTC
  bool core = false;    // false when this speculad was built without the speculation core
};

// session.*, action.*, branch.*, checkpoint.*. `service` must outlive the
// dispatcher's use.
void RegisterSessionMethods(rpc::Dispatcher& dispatcher, SessionService& service);
// daemon.ping, daemon.version, daemon.methods.
void RegisterDaemonMethods(rpc::Dispatcher& dispatcher, DaemonInfo info);

// Input checks shared with the CLI tests: a session/branch/checkpoint id
// (non-empty, at most 256 bytes, no '/', NUL, control characters, not "." or
// ".."), and an action command (non-blank, at most 1 MiB, no NUL).
Status ValidateId(std::string_view what, std::string_view id);
Status ValidateCommand(std::string_view command);

}  // namespace specula::service
