// What speculad serves, as a C++ interface: one virtual per JSON-RPC method
// of docs/api.md, taking the method's request and returning its response as
// the wire contract defines them (runtime/api/wire.h). The handlers
// (handlers.cpp) decode params, call this interface from worker threads and
// encode the result; CoreSessionService implements it over the speculation
// core. Every method may be called concurrently from several threads.
#pragma once

#include <functional>
#include <vector>

#include "common/error.h"
#include "runtime/api/wire.h"

namespace specula::service {

// Where a streaming commit's output goes (api::OutputChunk, docs/api.md
// "Streaming output"): called on the commit's thread, before it returns.
using OutputChunkSink = std::function<void(const api::OutputChunk&)>;

class SessionService {
 public:
  virtual ~SessionService() = default;

  // SIGTERM: abort what is running so that blocked calls return soon; calls
  // may still arrive until the server has drained.
  virtual void BeginShutdown() {}

  virtual Result<api::CreateSessionResponse> CreateSession(const api::CreateSessionRequest& req) = 0;
  virtual Result<std::vector<api::Session>> ListSessions(const api::ListSessionsRequest& req) = 0;
  virtual Result<api::Session> ShowSession(const api::ShowSessionRequest& req) = 0;
  virtual Result<api::DestroySessionResponse> DestroySession(const api::DestroySessionRequest& req) = 0;
  virtual Result<api::RollbackResponse> Rollback(const api::RollbackRequest& req) = 0;

  virtual Result<api::SpeculateResponse> Speculate(const api::SpeculateRequest& req) = 0;
  // on_chunk (may be empty) gets the output as OutputChunks before the
  // reply; the handler passes one only for a request with stream: true.
  virtual Result<api::CommitResponse> Commit(const api::CommitRequest& req, const OutputChunkSink& on_chunk) = 0;
  virtual Result<api::AbortResponse> Abort(const api::AbortRequest& req) = 0;

  virtual Result<std::vector<api::BranchSummary>> ListBranches(const api::ListBranchesRequest& req) = 0;
  virtual Result<api::BranchDetail> ShowBranch(const api::ShowBranchRequest& req) = 0;
  virtual Result<api::BranchDiff> DiffBranch(const api::DiffBranchRequest& req) = 0;

  virtual Result<std::vector<api::Checkpoint>> ListCheckpoints(const api::ListCheckpointsRequest& req) = 0;
  virtual Result<api::Checkpoint> ShowCheckpoint(const api::ShowCheckpointRequest& req) = 0;
  // What a checkpoint changed relative to its parent.
  virtual Result<api::CheckpointDiff> DiffCheckpoint(const api::DiffCheckpointRequest& req) = 0;
  // A read-only merged view of the checkpoint's filesystem at req.dir (an
  // existing empty directory).
  virtual Result<api::MountCheckpointResponse> MountCheckpoint(const api::MountCheckpointRequest& req) = 0;
  virtual Result<api::UmountCheckpointResponse> UmountCheckpoint(const api::UmountCheckpointRequest& req) = 0;
};

}  // namespace specula::service
