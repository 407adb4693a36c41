#include "runtime/service/coreless_service.h"

namespace specula::service {
namespace {

Error NoCore(std::string_view what) {
  return Error(Code::kUnavailable, std::string(what) + ": this speculad was built without the speculation core")
      .WithHint("rebuild with runtime/core present; `specula version` shows \"core\"");
}

// Nothing exists without the core: lookups of a named thing are not_found,
// which is what a caller holding a stale id should see.
Error Unknown(std::string_view kind, const std::string& id) {
  return Error(Code::kNotFound, "no " + std::string(kind) + " \"" + id + "\"")
      .WithHint("this speculad has no speculation core, so it holds no sessions");
}

}  // namespace

Result<CreateSessionResponse> CorelessSessionService::CreateSession(const CreateSessionRequest&) {
  return NoCore("session.create");
}
Result<SessionInfo> CorelessSessionService::ShowSession(const std::string& s) { return Unknown("session", s); }
Status CorelessSessionService::DestroySession(const std::string& s) { return Unknown("session", s); }
Result<std::string> CorelessSessionService::Rollback(const std::string& s, const std::string&) {
  return Unknown("session", s);
}
Result<std::string> CorelessSessionService::Speculate(const ActionRequest& r) { return Unknown("session", r.session); }
Result<CommitResponse> CorelessSessionService::Commit(const ActionRequest& r) { return Unknown("session", r.session); }
Result<AbortResponse> CorelessSessionService::Abort(const std::string& s) { return Unknown("session", s); }
Result<std::vector<BranchSummary>> CorelessSessionService::ListBranches(const std::string& s) {
  return Unknown("session", s);
}
Result<BranchDetail> CorelessSessionService::ShowBranch(const std::string& b) { return Unknown("branch", b); }
Result<BranchDiff> CorelessSessionService::DiffBranch(const std::string& b) { return Unknown("branch", b); }
Result<std::vector<CheckpointInfo>> CorelessSessionService::ListCheckpoints(const std::string& s) {
  return Unknown("session", s);
}
Result<CheckpointInfo> CorelessSessionService::ShowCheckpoint(const std::string& c) {
  return Unknown("checkpoint", c);
}
Status CorelessSessionService::MountCheckpoint(const std::string& c, const std::string&) {
  return Unknown("checkpoint", c);
}
Status CorelessSessionService::UmountCheckpoint(const std::string&) { return NoCore("checkpoint.umount"); }

}  // namespace specula::service
