// The SessionService of a full speculad: the JSON-RPC methods mapped onto
// the speculation core (runtime/core/session_manager.h). Conversion only,
// plus checkpoint.mount/umount, which the core leaves to the daemon: a
// read-only overlay of the checkpoint's layers over the session's base.
#pragma once

#include <memory>

#include "runtime/core/session_manager.h"
#include "runtime/service/session_service.h"

namespace specula::service {

class CoreSessionService final : public SessionService {
 public:
  // Opens the state in state_dir. SessionManager::Open reconciles it after a
  // crash (live branches of the old process become discarded), so this
  // must run before the socket accepts anyone.
  static Result<std::unique_ptr<CoreSessionService>> Open(const std::string& state_dir);

  Status Recover() override { return Status::Ok(); }  // done by Open
  Result<CreateSessionResponse> CreateSession(const CreateSessionRequest& req) override;
  Result<std::vector<SessionInfo>> ListSessions() override;
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

 private:
  explicit CoreSessionService(std::unique_ptr<core::SessionManager> m) : manager_(std::move(m)) {}
  SessionInfo Convert(const core::SessionInfo& s);
  std::unique_ptr<core::SessionManager> manager_;
};

}  // namespace specula::service
