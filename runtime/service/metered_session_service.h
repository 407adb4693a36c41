// speculad's metrics, counted at the service boundary: a SessionService
// that forwards every method to another (the CoreSessionService) and
// counts around it into a metrics::Registry. Counting here rather than in
// the core keeps the core free of metrics and sees exactly what clients
// see: a method's latency as the caller waits for it, its error codes as
// the caller gets them. Values the service already keeps (sessions, live
// branches, transparent speculation's counts) are read at scrape time.
// Only installed when speculad runs with --metrics-listen.
// The metric names and what they count: docs/operations.md "Metrics".
#pragma once

#include <functional>

#include "runtime/core/session_manager.h"
#include "runtime/criu/criu_driver.h"
#include "runtime/metrics/registry.h"
#include "runtime/service/session_service.h"

namespace specula::service {

class MeteredSessionService final : public SessionService {
 public:
  // Figures the core keeps by itself (its CRIU driver's counters), read at
  // scrape time; empty: the CRIU families stay at 0.
  using CriuSource = std::function<criu::CriuCounters()>;
  // Registers its families (and a scrape-time collector reading `inner`
  // and `criu`) in `registry`; all must outlive this object and every scrape.
  // The warm pool's size and use (core::PoolStats); empty: 0.
  using PoolSource = std::function<core::PoolStats()>;
  MeteredSessionService(SessionService& inner, metrics::Registry& registry, CriuSource criu = {},
                        PoolSource pool = {});

  void BeginShutdown() override { inner_.BeginShutdown(); }
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
  // Counts a failed call under its method and error code, passes it on.
  template <typename T>
  Result<T> Count(const char* method, Result<T> r) {
    if (!r.ok()) errors_.Inc({method, std::string(CodeName(r.error().code()))});
    return r;
  }
  void Collect();

  SessionService& inner_;
  CriuSource criu_;
  PoolSource pool_;
  metrics::Gauge& sessions_;
  metrics::Gauge& live_branches_;
  metrics::Gauge& commits_running_;
  metrics::Counter& launched_;
  metrics::Counter& promoted_;
  metrics::Counter& discarded_;
  metrics::Counter& hits_;
  metrics::Counter& misses_;
  metrics::Counter& saved_;
  metrics::Histogram& commit_seconds_;
  metrics::Histogram& fork_seconds_;
  metrics::Counter& errors_;
  metrics::Counter& speculation_launched_;
  metrics::Counter& speculation_hits_;
  metrics::Gauge& process_images_;
  metrics::Gauge& process_image_bytes_;
  metrics::Counter& criu_calls_;
  metrics::Counter& criu_bytes_;
  metrics::Counter& criu_seconds_;
  metrics::Gauge& pool_sandboxes_;
  metrics::Counter& pool_takes_;
};

}  // namespace specula::service
