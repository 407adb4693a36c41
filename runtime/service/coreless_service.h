// The SessionService of a speculad built without the speculation core
// (runtime/core): it holds no sessions, so session.list is truthfully empty,
// and every method that would need the core fails with kUnavailable and says
// so. It lets the transport, the CLI and their tests run before (or without)
// the core; speculad reports it in daemon.version as "core": false.
#pragma once

#include "runtime/service/session_service.h"

namespace specula::service {

class CorelessSessionService final : public SessionService {
 public:
  Status Recover() override { return Status::Ok(); }
  Result<CreateSessionResponse> CreateSession(const CreateSessionRequest& req) override;
  Result<std::vector<SessionInfo>> ListSessions() override { return std::vector<SessionInfo>{}; }
  Result<SessionInfo> ShowSession(const std::string& session) override;
  Status DestroySession(const std::string& session) override;
  Result<std::string> Rollback(const std::string& session, const std::string& checkpoint) override;
  Result<std::string> Speculate(const ActionRequest& req) override;
  Result<CommitResponse> Commit(const ActionRequest& req) override;
  Result<AbortResponse> Abort(const std::string& session) override;
  Result<std::vector<BranchSummary>> ListBranches(const std::string& session) override;
  Result<BranchDetail> ShowBranch(const std::string& branch) override;
  Result<BranchDiff> DiffBranch(const std::string& branch) override;
  Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& session) override;
  Result<CheckpointInfo> ShowCheckpoint(const std::string& checkpoint) override;
  Status MountCheckpoint(const std::string& checkpoint, const std::string& dir) override;
  Status UmountCheckpoint(const std::string& dir) override;
};

}  // namespace specula::service
