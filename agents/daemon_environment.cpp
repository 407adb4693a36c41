#include "agents/daemon_environment.h"

#include <spdlog/spdlog.h>

#include "common/paths.h"

namespace specula::agents {
namespace {

ActionOutcome ToOutcome(const api::BranchResult& r) {
  return ActionOutcome{r.exit_code, r.signal, r.stdout_text.value_or(""), r.stderr_text.value_or(""),
                       r.truncated, r.duration_ms};
}

}  // namespace

CommitResult ToCommitResult(const api::CommitResponse& r) {
  CommitResult c;
  c.hit = r.hit;
  c.branch = r.branch;
  c.outcome = ActionOutcome{r.exit_code, r.signal, r.stdout_text, r.stderr_text, r.truncated, r.duration_ms};
  c.saved_ms = r.saved_ms;
  c.head = r.head;
  c.lossy_effects = r.lossy_effects;
  c.flags = r.flags;
  return c;
}

Result<CommitResult> ParseCommitResult(const api::Json& result) {
  SPECULA_ASSIGN_OR_RETURN(api::CommitResponse reply,
                           api::FromJson<api::CommitResponse>(result, api::CommitRequest::kMethod));
  return ToCommitResult(reply);
}

Result<std::unique_ptr<DaemonEnvironment>> DaemonEnvironment::Create(DaemonEnvironmentOptions options) {
  if (options.socket_path.empty()) options.socket_path = kDefaultSocket;
  auto client = rpc::Client::Connect(options.socket_path);
  if (!client.ok()) {
    // The errno's own code, as agents have always reported it (a socket
    // path that does not exist is not_found), with the client's hint.
    const Error& e = client.error();
    if (e.sys_errno() == 0) return e;
    return Error(CodeFromErrno(e.sys_errno()), e.message(), e.sys_errno()).WithHint(e.hint());
  }
  std::unique_ptr<DaemonEnvironment> env(new DaemonEnvironment(std::move(options), std::move(*client)));
  const DaemonEnvironmentOptions& o = env->options_;
  api::CreateSessionRequest create{.base = o.base, .target = o.target, .policy = o.policy, .name = o.name};
  SPECULA_ASSIGN_OR_RETURN(api::CreateSessionResponse created, env->client_.Call(create, o.rpc_timeout));
  if (created.session.empty()) return Error(Code::kInternal, "session.create: no session in reply");
  env->session_ = created.session;
  env->head_ = created.head;
  for (const auto& cmd : o.setup_commands) {
    SPECULA_ASSIGN_OR_RETURN(CommitResult c, env->Commit(cmd, std::chrono::milliseconds(60000)));
    if (c.outcome.exit_code != 0) {
      return Error(Code::kFailedPrecondition, "session setup `" + cmd + "` exited " +
                                                  std::to_string(c.outcome.exit_code) + ": " +
                                                  c.outcome.stderr_text);
    }
  }
  return env;
}

DaemonEnvironment::~DaemonEnvironment() {
  if (session_.empty()) return;
  auto r = client_.Call(api::DestroySessionRequest{session_}, options_.rpc_timeout);
  if (!r.ok()) spdlog::warn("session.destroy: {}", r.error().ToString());
}

Result<BranchId> DaemonEnvironment::Speculate(const std::string& command, std::chrono::milliseconds timeout) {
  api::SpeculateRequest req;
  req.session = session_;
  req.command = command;
  req.timeout_ms = static_cast<uint64_t>(timeout.count());
  // Untyped, to keep the id value exactly as sent (see branch_ids_).
  SPECULA_ASSIGN_OR_RETURN(api::Json raw, client_.Call(req.kMethod, api::ToJson(req), options_.rpc_timeout));
  SPECULA_ASSIGN_OR_RETURN(api::SpeculateResponse reply, api::FromJson<api::SpeculateResponse>(raw, req.kMethod));
  if (reply.branch.empty()) return Error(Code::kInternal, "action.speculate: no branch in reply");
  branch_ids_[reply.branch] = raw["branch"];
  return reply.branch;
}

Result<CommitResult> DaemonEnvironment::Commit(const std::string& command, std::chrono::milliseconds timeout) {
  api::CommitRequest req;
  req.session = session_;
  req.command = command;
  req.timeout_ms = static_cast<uint64_t>(timeout.count());
  SPECULA_ASSIGN_OR_RETURN(api::CommitResponse reply, client_.Call(req, timeout + options_.rpc_timeout));
  if (!reply.head.empty()) head_ = reply.head;
  branch_ids_.clear();  // every branch of the old head is promoted or discarded
  return ToCommitResult(reply);
}

Status DaemonEnvironment::Abort() {
  auto r = client_.Call(api::AbortRequest{session_}, options_.rpc_timeout);
  branch_ids_.clear();
  return r.status();
}

Result<std::optional<ActionOutcome>> DaemonEnvironment::PeekBranch(const BranchId& branch) {
  auto it = branch_ids_.find(branch);
  api::Json id = it != branch_ids_.end() ? it->second : api::Json(branch);
  SPECULA_ASSIGN_OR_RETURN(api::Json raw, client_.Call(api::ShowBranchRequest::kMethod, {{"branch", id}},
                                                       options_.rpc_timeout));
  SPECULA_ASSIGN_OR_RETURN(api::BranchDetail detail,
                           api::FromJson<api::BranchDetail>(raw, api::ShowBranchRequest::kMethod));
  if (detail.state == "failed" || detail.state == "discarded") {
    return Error(Code::kAborted, "branch " + branch + " is " + detail.state);
  }
  if (!detail.result) return std::optional<ActionOutcome>();
  const api::BranchResult& res = *detail.result;
  // Pre-launching the actor needs the branch's output text. A daemon that
  // only reports sizes (stdout_bytes) cannot support that for non-empty
  // output: say so once (the engine then stops polling this branch; the hit
  // itself still works through action.commit).
  bool has_text = res.stdout_text && res.stderr_text;
  if (!has_text && (res.stdout_bytes != 0 || res.stderr_bytes != 0)) {
    return Error(Code::kUnavailable, "branch.show: result has no output text");
  }
  return std::optional<ActionOutcome>(ToOutcome(res));
}

}  // namespace specula::agents
