// The JSON shapes of docs/api.md for the service structs. Field names are the
// API contract (stdout_text is "stdout" on the wire, and so on).
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/service/session_service.h"

namespace specula::service {

using Json = nlohmann::json;

Json ToJson(const CreateSessionResponse& v);
Json ToJson(const SessionInfo& v);
Json ToJson(const LossyEffect& v);
Json ToJson(const CommitResponse& v);
Json ToJson(const AbortResponse& v);
Json ToJson(const ActionOutcome& v);
Json ToJson(const BranchSummary& v);
Json ToJson(const EffectEntry& v);
Json ToJson(const SyscallEvent& v);
Json ToJson(const BranchDetail& v);
Json ToJson(const FileChange& v);
Json ToJson(const BranchDiff& v);
Json ToJson(const CheckpointInfo& v);

template <typename T>
Json ToJsonArray(const std::vector<T>& items) {
  Json out = Json::array();
  for (const auto& item : items) out.push_back(ToJson(item));
  return out;
}

}  // namespace specula::service
