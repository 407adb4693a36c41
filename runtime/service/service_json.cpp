#include "runtime/service/service_json.h"

namespace specula::service {

Json ToJson(const CreateSessionResponse& v) { return {{"session", v.session}, {"head", v.head}}; }

Json ToJson(const SessionInfo& v) {
  return {{"session", v.session}, {"name", v.name}, {"base", v.base}, {"target", v.target},
          {"policy", v.policy}, {"head", v.head}, {"created", v.created},
          {"checkpoints", v.checkpoints}, {"live_branches", v.live_branches}};
}

Json ToJson(const LossyEffect& v) {
  return {{"tag", v.tag}, {"kind", v.kind}, {"path", v.path}, {"compensated", v.compensated}};
}

Json ToJson(const CommitResponse& v) {
  return {{"hit", v.hit}, {"branch", v.branch}, {"exit_code", v.exit_code}, {"signal", v.signal},
          {"stdout", v.stdout_text}, {"stderr", v.stderr_text}, {"truncated", v.truncated},
          {"duration_ms", v.duration_ms}, {"saved_ms", v.saved_ms}, {"head", v.head},
          {"lossy_effects", ToJsonArray(v.lossy_effects)}, {"flags", v.flags}};
}

Json ToJson(const AbortResponse& v) { return {{"discarded", v.discarded}}; }

Json ToJson(const ActionOutcome& v) {
  return {{"exit_code", v.exit_code}, {"signal", v.signal}, {"duration_ms", v.duration_ms},
          {"stdout_bytes", v.stdout_bytes}, {"stderr_bytes", v.stderr_bytes}, {"truncated", v.truncated},
          {"stdout", v.stdout_text}, {"stderr", v.stderr_text}};
}

Json ToJson(const BranchSummary& v) {
  return {{"branch", v.branch}, {"session", v.session}, {"state", v.state}, {"command", v.command},
          {"parent_checkpoint", v.parent_checkpoint}, {"created", v.created},
          {"result", v.result ? ToJson(*v.result) : Json(nullptr)}};
}

Json ToJson(const EffectEntry& v) {
  return {{"kind", v.kind}, {"path", v.path}, {"detail", v.detail}, {"tag", v.tag}};
}

Json ToJson(const SyscallEvent& v) {
  return {{"syscall", v.syscall}, {"detail", v.detail}, {"state", v.state}};
}

Json ToJson(const BranchDetail& v) {
  Json out = ToJson(v.summary);
  out["journal"] = ToJsonArray(v.journal);
  out["deferred"] = ToJsonArray(v.deferred);
  out["denied"] = ToJsonArray(v.denied);
  out["lossy_effects"] = ToJsonArray(v.lossy_effects);
  out["upper_bytes"] = v.upper_bytes;
  out["flags"] = v.flags;
  out["reason"] = v.reason;
  return out;
}

Json ToJson(const FileChange& v) {
  return {{"path", v.path}, {"change", v.change}, {"type", v.type}, {"diff", v.diff}};
}

Json ToJson(const BranchDiff& v) { return {{"branch", v.branch}, {"files", ToJsonArray(v.files)}}; }

Json ToJson(const CheckpointInfo& v) {
  return {{"checkpoint", v.checkpoint}, {"parent", v.parent.empty() ? Json(nullptr) : Json(v.parent)},
          {"session", v.session}, {"command", v.command}, {"created", v.created},
          {"layers", v.layers}, {"has_process_image", v.has_process_image},
          {"image_bytes", v.image_bytes}, {"cwd", v.cwd}};
}

}  // namespace specula::service
