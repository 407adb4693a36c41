#include "runtime/service/handlers.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

#include "runtime/rpc/params.h"
#include "runtime/service/service_json.h"

namespace specula::service {
namespace {

using rpc::CallContext;
using rpc::MethodKind;
using rpc::Params;

constexpr uint64_t kMaxTimeoutMs = 7ull * 24 * 3600 * 1000;  // a week: anything longer is a typo
constexpr size_t kMaxCommandBytes = 1u << 20;

Status ValidateAbsolutePath(std::string_view what, std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return Error(Code::kInvalidArgument, std::string(what) + " must be an absolute path, got \"" +
                                             std::string(path) + "\"");
  }
  if (path.find('\0') != std::string_view::npos || path.size() > 4096) {
    return Error(Code::kInvalidArgument, std::string(what) + " is not a valid path");
  }
  return Status::Ok();
}

// Reads a required id param and validates it.
Result<std::string> IdParam(Params& p, std::string_view key) {
  SPECULA_ASSIGN_OR_RETURN(std::string id, p.String(key));
  SPECULA_TRY(ValidateId(key, id));
  return id;
}

Result<ActionRequest> ActionParams(Params& p) {
  ActionRequest req;
  SPECULA_ASSIGN_OR_RETURN(req.session, IdParam(p, "session"));
  SPECULA_ASSIGN_OR_RETURN(req.command, p.String("command"));
  SPECULA_TRY(ValidateCommand(req.command));
  SPECULA_ASSIGN_OR_RETURN(req.timeout_ms, p.OptUint("timeout_ms", 0, kMaxTimeoutMs));
  SPECULA_TRY(p.Finish());
  return req;
}

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Status ValidateId(std::string_view what, std::string_view id) {
  bool bad = id.empty() || id.size() > 256 || id == "." || id == "..";
  for (char c : id) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) bad = true;
  }
  if (bad) {
    return Error(Code::kInvalidArgument, std::string(what) + " \"" + std::string(id.substr(0, 64)) +
                                             "\" is not a valid id")
        .WithHint("ids are printed by `specula session ls`, `specula branches` and `specula log`");
  }
  return Status::Ok();
}

Status ValidateCommand(std::string_view command) {
  if (command.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Error(Code::kInvalidArgument, "command is blank");
  }
  if (command.size() > kMaxCommandBytes) {
    return Error(Code::kInvalidArgument, "command is longer than " + std::to_string(kMaxCommandBytes) + " bytes");
  }
  if (command.find('\0') != std::string_view::npos) {
    return Error(Code::kInvalidArgument, "command contains a NUL byte");
  }
  return Status::Ok();
}

void RegisterSessionMethods(rpc::Dispatcher& d, SessionService& svc) {
  d.Register("session.create", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("session.create", params);
    CreateSessionRequest req;
    SPECULA_ASSIGN_OR_RETURN(req.base, p.OptString("base", "/"));
    SPECULA_ASSIGN_OR_RETURN(req.target, p.OptString("target", "layer"));
    SPECULA_ASSIGN_OR_RETURN(req.policy_file, p.OptString("policy", ""));
    SPECULA_ASSIGN_OR_RETURN(req.name, p.OptString("name", ""));
    SPECULA_TRY(p.Finish());
    SPECULA_TRY(ValidateAbsolutePath("base", req.base));
    if (req.target != "layer" && req.target != "base") {
      return Error(Code::kInvalidArgument, "target must be \"layer\" or \"base\", got \"" + req.target + "\"");
    }
    // An absolute path, or the plain name of a shipped policy ("sysadmin").
    if (!req.policy_file.empty() && req.policy_file.find('/') != std::string::npos) {
      SPECULA_TRY(ValidateAbsolutePath("policy", req.policy_file));
    } else if (!req.policy_file.empty()) {
      SPECULA_TRY(ValidateId("policy", req.policy_file));
    }
    if (!req.name.empty()) SPECULA_TRY(ValidateId("name", req.name));
    SPECULA_ASSIGN_OR_RETURN(CreateSessionResponse resp, svc.CreateSession(req));
    return ToJson(resp);
  });
  d.Register("session.list", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("session.list", params);
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(auto sessions, svc.ListSessions());
    return ToJsonArray(sessions);
  });
  d.Register("session.show", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("session.show", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(SessionInfo info, svc.ShowSession(session));
    return ToJson(info);
  });
  d.Register("session.destroy", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("session.destroy", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_TRY(p.Finish());
    SPECULA_TRY(svc.DestroySession(session));
    return Json{{"session", session}, {"destroyed", true}};
  });
  d.Register("session.rollback", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("session.rollback", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_ASSIGN_OR_RETURN(std::string checkpoint, IdParam(p, "checkpoint"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(std::string head, svc.Rollback(session, checkpoint));
    return Json{{"session", session}, {"head", head}};
  });

  d.Register("action.speculate", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("action.speculate", params);
    SPECULA_ASSIGN_OR_RETURN(ActionRequest req, ActionParams(p));
    SPECULA_ASSIGN_OR_RETURN(std::string branch, svc.Speculate(req));
    return Json{{"branch", branch}};
  });
  d.Register("action.commit", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("action.commit", params);
    SPECULA_ASSIGN_OR_RETURN(ActionRequest req, ActionParams(p));
    SPECULA_ASSIGN_OR_RETURN(CommitResponse resp, svc.Commit(req));
    return ToJson(resp);
  });
  d.Register("action.abort", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("action.abort", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(AbortResponse resp, svc.Abort(session));
    return ToJson(resp);
  });

  d.Register("branch.list", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("branch.list", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(auto branches, svc.ListBranches(session));
    return ToJsonArray(branches);
  });
  d.Register("branch.show", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("branch.show", params);
    SPECULA_ASSIGN_OR_RETURN(std::string branch, IdParam(p, "branch"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(BranchDetail detail, svc.ShowBranch(branch));
    return ToJson(detail);
  });
  d.Register("branch.diff", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("branch.diff", params);
    SPECULA_ASSIGN_OR_RETURN(std::string branch, IdParam(p, "branch"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(BranchDiff diff, svc.DiffBranch(branch));
    return ToJson(diff);
  });

  d.Register("checkpoint.list", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("checkpoint.list", params);
    SPECULA_ASSIGN_OR_RETURN(std::string session, IdParam(p, "session"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(auto checkpoints, svc.ListCheckpoints(session));
    return ToJsonArray(checkpoints);
  });
  d.Register("checkpoint.show", MethodKind::kQuick, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("checkpoint.show", params);
    SPECULA_ASSIGN_OR_RETURN(std::string checkpoint, IdParam(p, "checkpoint"));
    SPECULA_TRY(p.Finish());
    SPECULA_ASSIGN_OR_RETURN(CheckpointInfo info, svc.ShowCheckpoint(checkpoint));
    return ToJson(info);
  });
  d.Register("checkpoint.mount", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("checkpoint.mount", params);
    SPECULA_ASSIGN_OR_RETURN(std::string checkpoint, IdParam(p, "checkpoint"));
    SPECULA_ASSIGN_OR_RETURN(std::string dir, p.String("dir"));
    SPECULA_TRY(p.Finish());
    SPECULA_TRY(ValidateAbsolutePath("dir", dir));
    SPECULA_TRY(svc.MountCheckpoint(checkpoint, dir));
    return Json{{"checkpoint", checkpoint}, {"dir", dir}};
  });
  d.Register("checkpoint.umount", MethodKind::kBlocking, [&svc](const Json& params, const CallContext&) -> Result<Json> {
    Params p("checkpoint.umount", params);
    SPECULA_ASSIGN_OR_RETURN(std::string dir, p.String("dir"));
    SPECULA_TRY(p.Finish());
    SPECULA_TRY(ValidateAbsolutePath("dir", dir));
    SPECULA_TRY(svc.UmountCheckpoint(dir));
    return Json{{"dir", dir}};
  });
}

void RegisterDaemonMethods(rpc::Dispatcher& d, DaemonInfo info) {
  if (info.started.empty()) info.started = NowRfc3339();
  d.Register("daemon.ping", MethodKind::kQuick, [](const Json& params, const CallContext&) -> Result<Json> {
    Params p("daemon.ping", params);
    SPECULA_TRY(p.Finish());
    return Json{{"pong", true}};
  });
  d.Register("daemon.version", MethodKind::kQuick, [info](const Json& params, const CallContext&) -> Result<Json> {
    Params p("daemon.version", params);
    SPECULA_TRY(p.Finish());
    return Json{{"version", info.version}, {"protocol", 1}, {"pid", ::getpid()}, {"socket", info.socket},
                {"state_dir", info.state_dir}, {"started", info.started}, {"core", info.core}};
  });
  // Captures the dispatcher by pointer: it outlives every call it serves.
  d.Register("daemon.methods", MethodKind::kQuick, [&d](const Json& params, const CallContext&) -> Result<Json> {
    Params p("daemon.methods", params);
    SPECULA_TRY(p.Finish());
    return Json(d.Names());
  });
}

}  // namespace specula::service
