#include "runtime/service/handlers.h"

#include <unistd.h>

#include "common/time.h"

namespace specula::service {
namespace {

using rpc::MethodKind;

// Registers Request's method: params decoded, `call` run with them, its
// reply encoded. Every method of the contract goes through here.
template <api::WireRequest Request, typename Call>
void On(rpc::Dispatcher& d, MethodKind kind, Call call) {
  d.Register(Request::kMethod, kind, [call](const api::Json& params, const rpc::CallContext&) -> Result<api::Json> {
    Request req;
    SPECULA_TRY(api::DecodeParams(params, req));
    SPECULA_ASSIGN_OR_RETURN(typename Request::Response resp, call(req));
    return api::ToJson(resp);
  });
}

}  // namespace

void RegisterSessionMethods(rpc::Dispatcher& d, SessionService& svc) {
  constexpr MethodKind kQuick = MethodKind::kQuick, kBlocking = MethodKind::kBlocking;
  On<api::CreateSessionRequest>(d, kBlocking, [&svc](const auto& r) { return svc.CreateSession(r); });
  On<api::ListSessionsRequest>(d, kQuick, [&svc](const auto& r) { return svc.ListSessions(r); });
  On<api::ShowSessionRequest>(d, kQuick, [&svc](const auto& r) { return svc.ShowSession(r); });
  On<api::DestroySessionRequest>(d, kBlocking, [&svc](const auto& r) { return svc.DestroySession(r); });
  On<api::RollbackRequest>(d, kBlocking, [&svc](const auto& r) { return svc.Rollback(r); });

  On<api::SpeculateRequest>(d, kBlocking, [&svc](const auto& r) { return svc.Speculate(r); });
  // Not through On: a commit with stream: true sends its output to the
  // caller as notifications while it runs (docs/api.md "Streaming output").
  d.Register(api::CommitRequest::kMethod, kBlocking,
             [&svc](const api::Json& params, const rpc::CallContext& ctx) -> Result<api::Json> {
               api::CommitRequest req;
               SPECULA_TRY(api::DecodeParams(params, req));
               OutputChunkSink sink;
               if (req.stream && ctx.notify) {
                 sink = [&ctx](const api::OutputChunk& c) { ctx.notify(api::OutputChunk::kMethod, api::ToJson(c)); };
               }
               SPECULA_ASSIGN_OR_RETURN(api::CommitResponse resp, svc.Commit(req, sink));
               return api::ToJson(resp);
             });
  On<api::AbortRequest>(d, kBlocking, [&svc](const auto& r) { return svc.Abort(r); });

  On<api::ListBranchesRequest>(d, kQuick, [&svc](const auto& r) { return svc.ListBranches(r); });
  On<api::ShowBranchRequest>(d, kQuick, [&svc](const auto& r) { return svc.ShowBranch(r); });
  On<api::DiffBranchRequest>(d, kBlocking, [&svc](const auto& r) { return svc.DiffBranch(r); });

  On<api::ListCheckpointsRequest>(d, kQuick, [&svc](const auto& r) { return svc.ListCheckpoints(r); });
  On<api::ShowCheckpointRequest>(d, kQuick, [&svc](const auto& r) { return svc.ShowCheckpoint(r); });
  On<api::DiffCheckpointRequest>(d, kBlocking, [&svc](const auto& r) { return svc.DiffCheckpoint(r); });
  On<api::MountCheckpointRequest>(d, kBlocking, [&svc](const auto& r) { return svc.MountCheckpoint(r); });
  On<api::UmountCheckpointRequest>(d, kBlocking, [&svc](const auto& r) { return svc.UmountCheckpoint(r); });
}

void RegisterDaemonMethods(rpc::Dispatcher& d, DaemonInfo info) {
  if (info.started.empty()) info.started = Rfc3339(NowMs());
  On<api::PingRequest>(d, MethodKind::kQuick, [](const auto&) { return Result<api::PingResponse>(api::PingResponse{}); });
  On<api::VersionRequest>(d, MethodKind::kQuick, [info](const auto&) {
    return Result<api::VersionResponse>(
        api::VersionResponse{info.version, 1, ::getpid(), info.socket, info.state_dir, info.started});
  });
  // Captures the dispatcher by reference: it outlives every call it serves.
  On<api::MethodsRequest>(d, MethodKind::kQuick, [&d](const auto&) { return Result<std::vector<std::string>>(d.Names()); });
}

}  // namespace specula::service
