// The SessionService of speculad: the JSON-RPC methods mapped onto the
// speculation core (runtime/core/session_manager.h). Conversion from the
// core's records to the wire contract, plus checkpoint.mount/umount, which
// the core leaves to the daemon: a read-only overlay of the checkpoint's
// layers over the session's base.
#pragma once

#include <memory>

#include "runtime/core/session_manager.h"
#include "runtime/speculation/speculation.h"
#include "runtime/service/session_service.h"

namespace specula::service {

class CoreSessionService final : public SessionService {
 public:
  // Opens the state in state_dir. SessionManager::Open reconciles it after a
  // crash (live branches of the old process become discarded), so this
  // must run before the socket accepts anyone.
  // `socket`: the daemon's own socket, masked in every branch and refused
  // as a lossy path (core::SessionManagerOptions::masked_paths).
  // `pool_per_session`, `pool_total`: the warm pool
  // (core::SessionManagerOptions; 0 per session: none).
  static Result<std::unique_ptr<CoreSessionService>> Open(const std::string& state_dir,
                                                           const std::string& socket = "",
                                                           uint32_t pool_per_session = 0, uint32_t pool_total = 4);

  ~CoreSessionService() override;
  // Stops transparent speculation (no new rounds), then kills running
  // actions: a commit in flight fails (unavailable) and keeps nothing
  // (core::SessionManager::BeginShutdown).
  void BeginShutdown() override;
  // Waits until the transparent speculation has no round queued (tests).
  void DrainSpeculation() { speculation_->Drain(); }
  // The core's CRIU figures, for the metrics (MeteredSessionService).
  criu::CriuCounters CriuCounters() const { return manager_->criu_counters(); }
  // The warm pool's size and use, for the metrics.
  core::PoolStats PoolStats() const { return manager_->pool_stats(); }

  Result<api::CreateSessionResponse> CreateSession(const api::CreateSessionRequest& req) override;
  Result<std::vector<api::Session>> ListSessions(const api::ListSessionsRequest& req) override;
  Result<api::Session> ShowSession(const api::ShowSessionRequest& req) override;
  Result<api::DestroySessionResponse> DestroySession(const api::DestroySessionRequest& req) override;
  Result<api::RollbackResponse> Rollback(const api::RollbackRequest& req) override;
  Result<api::SpeculateResponse> Speculate(const api::SpeculateRequest& req) override;
  Result<api::CommitResponse> Commit(const api::CommitRequest& req, const OutputChunkSink& on_chunk) override;
  Result<api::AbortResponse> Abort(const api::AbortRequest& req) override;
  Result<std::vector<api::BranchSummary>> ListBranches(const api::ListBranchesRequest& req) override;
  Result<api::BranchDetail> ShowBranch(const api::ShowBranchRequest& req) override;
  Result<api::BranchDiff> DiffBranch(const api::DiffBranchRequest& req) override;
  Result<std::vector<api::Checkpoint>> ListCheckpoints(const api::ListCheckpointsRequest& req) override;
  Result<api::Checkpoint> ShowCheckpoint(const api::ShowCheckpointRequest& req) override;
  Result<api::CheckpointDiff> DiffCheckpoint(const api::DiffCheckpointRequest& req) override;
  Result<api::MountCheckpointResponse> MountCheckpoint(const api::MountCheckpointRequest& req) override;
  Result<api::UmountCheckpointResponse> UmountCheckpoint(const api::UmountCheckpointRequest& req) override;

 private:
  explicit CoreSessionService(std::unique_ptr<core::SessionManager> m);
  api::Session Convert(const core::SessionInfo& s);
  // Transparent speculation's launcher: a branch from `head` through the
  // core's Speculate, unless the head moved or the command already runs.
  Result<std::string> LaunchSpeculative(const std::string& session, const std::string& head,
                                        const speculation::Launch& launch);
  std::unique_ptr<core::SessionManager> manager_;
  // After manager_: stopped (its worker joined) before the core goes.
  std::unique_ptr<speculation::Speculation> speculation_;
};

}  // namespace specula::service
