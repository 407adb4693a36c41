#include "runtime/api/wire.h"

#include <cmath>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "runtime/api/params.h"
#include "runtime/api/validate.h"

namespace specula::api {
namespace {

constexpr uint64_t kMaxTimeoutMs = 7ull * 24 * 3600 * 1000;  // a week: anything longer is a typo

// How a field is written and read besides its C++ type.
enum As : unsigned {
  kPlain = 0,
  kId = 1,            // a string; a number in a reply is read as its decimal text
  kNullIfEmpty = 2,   // "" (or an empty optional) goes out as null
  kOmitIfEmpty = 4,   // "" (or false) is not sent at all
};

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// One field of a message: its key on the wire and its member. Doubles are
// durations: whole milliseconds go out as integers, as they always have.
template <typename C, typename M>
struct Field {
  const char* key;
  M C::*member;
  unsigned as = kPlain;

  void Write(Json& j, const C& v) const {
    const M& m = v.*member;
    if constexpr (IsOptional<M>::value) {
      if (m) {
        j[key] = *m;
      } else if (as & kNullIfEmpty) {
        j[key] = nullptr;
      }
    } else if constexpr (std::is_same_v<M, bool>) {
      if (!m && (as & kOmitIfEmpty)) return;
      j[key] = m;
    } else if constexpr (std::is_same_v<M, double>) {
      j[key] = m >= 0 && m < 1.8e19 && std::floor(m) == m ? Json(static_cast<uint64_t>(m)) : Json(m);
    } else if constexpr (std::is_same_v<M, std::string>) {
      if (m.empty() && (as & kOmitIfEmpty)) return;
      j[key] = m.empty() && (as & kNullIfEmpty) ? Json(nullptr) : Json(m);
    } else {
      j[key] = m;
    }
  }

  // Absent or null: the member keeps its default. A type mismatch throws.
  void Read(const Json& j, C& v) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    M& m = v.*member;
    if constexpr (IsOptional<M>::value) {
      m = it->template get<typename M::value_type>();
    } else if constexpr (std::is_same_v<M, std::string>) {
      m = (as & kId) && it->is_number_integer() ? it->dump() : it->template get<std::string>();
    } else {
      it->get_to(m);
    }
  }
};

template <typename C, typename M>
Field<C, M> F(const char* key, M C::*member, unsigned as = kPlain) {
  return {key, member, as};
}

// The field table of each message: written once, used both ways.
auto FieldsOf(const PingResponse*) { return std::tuple{F("pong", &PingResponse::pong)}; }
auto FieldsOf(const PingRequest*) { return std::tuple{}; }
auto FieldsOf(const VersionResponse*) {
  using T = VersionResponse;
  return std::tuple{F("version", &T::version), F("protocol", &T::protocol), F("pid", &T::pid),
                    F("socket", &T::socket), F("state_dir", &T::state_dir), F("started", &T::started),
                    F("core", &T::core)};
}
auto FieldsOf(const VersionRequest*) { return std::tuple{}; }
auto FieldsOf(const MethodsRequest*) { return std::tuple{}; }

auto FieldsOf(const CreateSessionResponse*) {
  return std::tuple{F("session", &CreateSessionResponse::session, kId), F("head", &CreateSessionResponse::head, kId)};
}
auto FieldsOf(const SpeculationConfig*) {
  using T = SpeculationConfig;
  return std::tuple{F("speculator", &T::speculator), F("k", &T::k), F("min_p", &T::min_p),
                    F("launch", &T::launch), F("model", &T::model, kOmitIfEmpty),
                    F("endpoint", &T::endpoint, kOmitIfEmpty), F("agent", &T::agent, kOmitIfEmpty)};
}
auto FieldsOf(const CreateSessionRequest*) {
  using T = CreateSessionRequest;
  return std::tuple{F("base", &T::base), F("target", &T::target), F("policy", &T::policy, kOmitIfEmpty),
                    F("name", &T::name, kOmitIfEmpty), F("speculation", &T::speculation)};
}
auto FieldsOf(const SpeculationStatus*) {
  using T = SpeculationStatus;
  return std::tuple{F("config", &T::config), F("proposals", &T::proposals), F("launched", &T::launched),
                    F("hits", &T::hits), F("cost_ms", &T::cost_ms), F("saving_ms", &T::saving_ms),
                    F("last_error", &T::last_error), F("round_head", &T::round_head, kId)};
}
auto FieldsOf(const Session*) {
  using T = Session;
  return std::tuple{F("session", &T::session, kId), F("name", &T::name), F("base", &T::base),
                    F("target", &T::target), F("policy", &T::policy), F("head", &T::head, kId),
                    F("created", &T::created), F("checkpoints", &T::checkpoints),
                    F("live_branches", &T::live_branches), F("speculation", &T::speculation)};
}
auto FieldsOf(const ListSessionsRequest*) { return std::tuple{}; }
auto FieldsOf(const ShowSessionRequest*) { return std::tuple{F("session", &ShowSessionRequest::session, kId)}; }
auto FieldsOf(const DestroySessionResponse*) {
  return std::tuple{F("session", &DestroySessionResponse::session, kId),
                    F("destroyed", &DestroySessionResponse::destroyed)};
}
auto FieldsOf(const DestroySessionRequest*) {
  return std::tuple{F("session", &DestroySessionRequest::session, kId)};
}
auto FieldsOf(const RollbackResponse*) {
  return std::tuple{F("session", &RollbackResponse::session, kId), F("head", &RollbackResponse::head, kId)};
}
auto FieldsOf(const RollbackRequest*) {
  return std::tuple{F("session", &RollbackRequest::session, kId),
                    F("checkpoint", &RollbackRequest::checkpoint, kId)};
}

auto FieldsOf(const ActionParams*) {  // SpeculateRequest and CommitRequest
  using T = ActionParams;
  return std::tuple{F("session", &T::session, kId), F("command", &T::command), F("timeout_ms", &T::timeout_ms)};
}
auto FieldsOf(const SpeculateResponse*) { return std::tuple{F("branch", &SpeculateResponse::branch, kId)}; }
auto FieldsOf(const LossyEffect*) {
  using T = LossyEffect;
  return std::tuple{F("tag", &T::tag), F("kind", &T::kind), F("path", &T::path), F("rule", &T::rule),
                    F("compensated", &T::compensated), F("detail", &T::detail)};
}
auto FieldsOf(const PromoteNote*) {
  using T = PromoteNote;
  return std::tuple{F("path", &T::path), F("action", &T::action), F("detail", &T::detail)};
}
auto FieldsOf(const CommitResponse*) {
  using T = CommitResponse;
  return std::tuple{F("hit", &T::hit), F("branch", &T::branch, kId), F("exit_code", &T::exit_code),
                    F("signal", &T::signal), F("stdout", &T::stdout_text), F("stderr", &T::stderr_text),
                    F("truncated", &T::truncated), F("duration_ms", &T::duration_ms),
                    F("saved_ms", &T::saved_ms), F("head", &T::head, kId),
                    F("lossy_effects", &T::lossy_effects), F("flags", &T::flags),
                    F("promote_notes", &T::promote_notes)};
}
auto FieldsOf(const CommitRequest*) {
  return std::tuple_cat(FieldsOf(static_cast<const ActionParams*>(nullptr)),
                        std::tuple{F("stream", &CommitRequest::stream, kOmitIfEmpty)});
}
auto FieldsOf(const OutputChunk*) {
  using T = OutputChunk;
  return std::tuple{F("session", &T::session, kId), F("branch", &T::branch, kId), F("stream", &T::stream),
                    F("data", &T::data)};
}
auto FieldsOf(const AbortResponse*) { return std::tuple{F("discarded", &AbortResponse::discarded)}; }
auto FieldsOf(const AbortRequest*) { return std::tuple{F("session", &AbortRequest::session, kId)}; }

auto FieldsOf(const BranchResult*) {
  using T = BranchResult;
  return std::tuple{F("exit_code", &T::exit_code), F("signal", &T::signal), F("duration_ms", &T::duration_ms),
                    F("stdout_bytes", &T::stdout_bytes), F("stderr_bytes", &T::stderr_bytes),
                    F("truncated", &T::truncated), F("stdout", &T::stdout_text), F("stderr", &T::stderr_text)};
}
auto FieldsOf(const BranchOrigin*) {
  using T = BranchOrigin;
  return std::tuple{F("source", &T::source), F("confidence", &T::confidence), F("rule", &T::rule)};
}
auto FieldsOf(const BranchSummary*) {
  using T = BranchSummary;
  return std::tuple{F("branch", &T::branch, kId), F("session", &T::session, kId), F("state", &T::state),
                    F("command", &T::command), F("parent_checkpoint", &T::parent_checkpoint, kId),
                    F("created", &T::created), F("result", &T::result, kNullIfEmpty),
                    F("origin", &T::origin)};
}
auto FieldsOf(const ListBranchesRequest*) { return std::tuple{F("session", &ListBranchesRequest::session, kId)}; }
auto FieldsOf(const JournalEntry*) {
  using T = JournalEntry;
  return std::tuple{F("kind", &T::kind), F("path", &T::path), F("detail", &T::detail), F("tag", &T::tag)};
}
auto FieldsOf(const SyscallEvent*) {
  using T = SyscallEvent;
  return std::tuple{F("syscall", &T::syscall), F("detail", &T::detail), F("state", &T::state)};
}
auto FieldsOf(const BranchDetail*) {
  using T = BranchDetail;
  return std::tuple_cat(FieldsOf(static_cast<const BranchSummary*>(nullptr)),
                        std::tuple{F("journal", &T::journal), F("deferred", &T::deferred), F("denied", &T::denied),
                                   F("lossy_effects", &T::lossy_effects), F("upper_bytes", &T::upper_bytes),
                                   F("flags", &T::flags), F("reason", &T::reason)});
}
auto FieldsOf(const ShowBranchRequest*) { return std::tuple{F("branch", &ShowBranchRequest::branch, kId)}; }
auto FieldsOf(const DiffFile*) {
  using T = DiffFile;
  return std::tuple{F("path", &T::path), F("change", &T::change), F("type", &T::type), F("diff", &T::diff)};
}
auto FieldsOf(const BranchDiff*) {
  return std::tuple{F("branch", &BranchDiff::branch, kId), F("files", &BranchDiff::files)};
}
auto FieldsOf(const DiffBranchRequest*) { return std::tuple{F("branch", &DiffBranchRequest::branch, kId)}; }

auto FieldsOf(const Checkpoint*) {
  using T = Checkpoint;
  return std::tuple{F("checkpoint", &T::checkpoint, kId), F("parent", &T::parent, kId | kNullIfEmpty),
                    F("session", &T::session, kId), F("command", &T::command), F("created", &T::created),
                    F("layers", &T::layers), F("has_process_image", &T::has_process_image),
                    F("image_bytes", &T::image_bytes), F("cwd", &T::cwd)};
}
auto FieldsOf(const ListCheckpointsRequest*) {
  return std::tuple{F("session", &ListCheckpointsRequest::session, kId)};
}
auto FieldsOf(const ShowCheckpointRequest*) {
  return std::tuple{F("checkpoint", &ShowCheckpointRequest::checkpoint, kId)};
}
auto FieldsOf(const CheckpointDiff*) {
  using T = CheckpointDiff;
  return std::tuple{F("checkpoint", &T::checkpoint, kId), F("parent", &T::parent, kId | kNullIfEmpty),
                    F("files", &T::files)};
}
auto FieldsOf(const DiffCheckpointRequest*) {
  return std::tuple{F("checkpoint", &DiffCheckpointRequest::checkpoint, kId)};
}
auto FieldsOf(const MountCheckpointResponse*) {
  return std::tuple{F("checkpoint", &MountCheckpointResponse::checkpoint, kId), F("dir", &MountCheckpointResponse::dir)};
}
auto FieldsOf(const MountCheckpointRequest*) {
  return std::tuple{F("checkpoint", &MountCheckpointRequest::checkpoint, kId), F("dir", &MountCheckpointRequest::dir)};
}
auto FieldsOf(const UmountCheckpointResponse*) { return std::tuple{F("dir", &UmountCheckpointResponse::dir)}; }
auto FieldsOf(const UmountCheckpointRequest*) { return std::tuple{F("dir", &UmountCheckpointRequest::dir)}; }

template <typename T>
void Write(Json& j, const T& v) {
  j = Json::object();
  std::apply([&](const auto&... field) { (field.Write(j, v), ...); }, FieldsOf(&v));
}

template <typename T>
void Read(const Json& j, T& v) {
  if (!j.is_object()) throw std::invalid_argument(std::string("expected an object, got ") + j.type_name());
  std::apply([&](const auto&... field) { (field.Read(j, v), ...); }, FieldsOf(&v));
}

// The params of action.speculate and action.commit, in the order their
// errors have always been reported.
Status ReadAction(Params& p, ActionParams& out) {
  SPECULA_ASSIGN_OR_RETURN(out.session, p.String("session"));
  SPECULA_TRY(ValidateId("session", out.session));
  SPECULA_ASSIGN_OR_RETURN(out.command, p.String("command"));
  SPECULA_TRY(ValidateCommand(out.command));
  SPECULA_ASSIGN_OR_RETURN(out.timeout_ms, p.OptUint("timeout_ms", 0, kMaxTimeoutMs));
  return Status::Ok();
}

// A required id param, validated as soon as it is read.
Status ReadId(Params& p, const char* key, std::string& out) {
  SPECULA_ASSIGN_OR_RETURN(out, p.String(key));
  return ValidateId(key, out);
}

// Methods whose only param is one id.
Status DecodeOneId(const Json& params, const char* method, const char* key, std::string& out) {
  Params p(method, params);
  SPECULA_TRY(ReadId(p, key, out));
  return p.Finish();
}

Status DecodeNoParams(const Json& params, const char* method) { return Params(method, params).Finish(); }

// session.create's speculation object, as strictly as the params around it.
Status DecodeSpeculation(const Json& j, SpeculationConfig& out) {
  Params p("session.create speculation", j);
  SPECULA_ASSIGN_OR_RETURN(out.speculator, p.OptString("speculator", "builtin"));
  SPECULA_ASSIGN_OR_RETURN(uint64_t k, p.OptUint("k", 3, 16));
  out.k = static_cast<uint32_t>(k);
  SPECULA_ASSIGN_OR_RETURN(out.min_p, p.OptProbability("min_p", 0));
  SPECULA_ASSIGN_OR_RETURN(out.launch, p.OptString("launch", "rule"));
  SPECULA_ASSIGN_OR_RETURN(out.model, p.OptString("model", ""));
  SPECULA_ASSIGN_OR_RETURN(out.endpoint, p.OptString("endpoint", ""));
  SPECULA_ASSIGN_OR_RETURN(out.agent, p.OptString("agent", ""));
  SPECULA_TRY(p.Finish());
  auto bad = [](const std::string& what) {
    return Error(Code::kInvalidArgument, "session.create: speculation " + what)
        .WithHint("see docs/api.md \"Transparent speculation\"");
  };
  if (out.speculator != "builtin" && out.speculator != "openai" && out.speculator != "none") {
    return bad("speculator must be \"builtin\", \"openai\" or \"none\", got \"" + out.speculator + "\"");
  }
  if (out.k == 0) return bad("k must be at least 1");
  if (out.launch != "rule" && out.launch != "all") {
    return bad("launch must be \"rule\" or \"all\", got \"" + out.launch + "\"");
  }
  if (out.speculator == "openai" && (out.model.empty() || out.endpoint.empty())) {
    return bad("speculator \"openai\" needs model and endpoint");
  }
  if (out.speculator != "openai" && (!out.model.empty() || !out.endpoint.empty())) {
    return bad("model and endpoint are only for speculator \"openai\"");
  }
  // A label, shown and used as a key: short, printable, one line.
  if (out.agent.size() > 64 ||
      std::any_of(out.agent.begin(), out.agent.end(), [](char c) { return c < 0x20 || c == 0x7f; })) {
    return bad("agent must be at most 64 printable characters");
  }
  return Status::Ok();
}

}  // namespace

#define SPECULA_API_DEFINE_JSON(T)                              \
  void to_json(Json& j, const T& v) { Write(j, v); }            \
  void from_json(const Json& j, T& v) { Read(j, v); }
SPECULA_API_MESSAGES(SPECULA_API_DEFINE_JSON)
#undef SPECULA_API_DEFINE_JSON

// ---------------------------------------------------------------- DecodeParams

Status DecodeParams(const Json& params, PingRequest&) { return DecodeNoParams(params, PingRequest::kMethod); }
Status DecodeParams(const Json& params, VersionRequest&) { return DecodeNoParams(params, VersionRequest::kMethod); }
Status DecodeParams(const Json& params, MethodsRequest&) { return DecodeNoParams(params, MethodsRequest::kMethod); }

Status DecodeParams(const Json& params, CreateSessionRequest& out) {
  Params p(CreateSessionRequest::kMethod, params);
  SPECULA_ASSIGN_OR_RETURN(out.base, p.OptString("base", "/"));
  SPECULA_ASSIGN_OR_RETURN(out.target, p.OptString("target", "layer"));
  SPECULA_ASSIGN_OR_RETURN(out.policy, p.OptString("policy", ""));
  SPECULA_ASSIGN_OR_RETURN(out.name, p.OptString("name", ""));
  SPECULA_ASSIGN_OR_RETURN(const Json* spec, p.OptObject("speculation"));
  SPECULA_TRY(p.Finish());
  if (spec != nullptr) SPECULA_TRY(DecodeSpeculation(*spec, out.speculation.emplace()));
  SPECULA_TRY(ValidateAbsolutePath("base", out.base));
  if (out.target != "layer" && out.target != "base") {
    return Error(Code::kInvalidArgument, "target must be \"layer\" or \"base\", got \"" + out.target + "\"");
  }
  // An absolute path, or the plain name of a shipped policy ("sysadmin").
  if (out.policy.find('/') != std::string::npos) {
    SPECULA_TRY(ValidateAbsolutePath("policy", out.policy));
  } else if (!out.policy.empty()) {
    SPECULA_TRY(ValidateId("policy", out.policy));
  }
  if (!out.name.empty()) SPECULA_TRY(ValidateId("name", out.name));
  return Status::Ok();
}

Status DecodeParams(const Json& params, ListSessionsRequest&) {
  return DecodeNoParams(params, ListSessionsRequest::kMethod);
}
Status DecodeParams(const Json& params, ShowSessionRequest& out) {
  return DecodeOneId(params, ShowSessionRequest::kMethod, "session", out.session);
}
Status DecodeParams(const Json& params, DestroySessionRequest& out) {
  return DecodeOneId(params, DestroySessionRequest::kMethod, "session", out.session);
}
Status DecodeParams(const Json& params, RollbackRequest& out) {
  Params p(RollbackRequest::kMethod, params);
  SPECULA_TRY(ReadId(p, "session", out.session));
  SPECULA_TRY(ReadId(p, "checkpoint", out.checkpoint));
  return p.Finish();
}

Status DecodeParams(const Json& params, SpeculateRequest& out) {
  Params p(SpeculateRequest::kMethod, params);
  SPECULA_TRY(ReadAction(p, out));
  return p.Finish();
}
Status DecodeParams(const Json& params, CommitRequest& out) {
  Params p(CommitRequest::kMethod, params);
  SPECULA_TRY(ReadAction(p, out));
  SPECULA_ASSIGN_OR_RETURN(out.stream, p.OptBool("stream", false));
  return p.Finish();
}
Status DecodeParams(const Json& params, AbortRequest& out) {
  return DecodeOneId(params, AbortRequest::kMethod, "session", out.session);
}

Status DecodeParams(const Json& params, ListBranchesRequest& out) {
  return DecodeOneId(params, ListBranchesRequest::kMethod, "session", out.session);
}
Status DecodeParams(const Json& params, ShowBranchRequest& out) {
  return DecodeOneId(params, ShowBranchRequest::kMethod, "branch", out.branch);
}
Status DecodeParams(const Json& params, DiffBranchRequest& out) {
  return DecodeOneId(params, DiffBranchRequest::kMethod, "branch", out.branch);
}

Status DecodeParams(const Json& params, ListCheckpointsRequest& out) {
  return DecodeOneId(params, ListCheckpointsRequest::kMethod, "session", out.session);
}
Status DecodeParams(const Json& params, ShowCheckpointRequest& out) {
  return DecodeOneId(params, ShowCheckpointRequest::kMethod, "checkpoint", out.checkpoint);
}
Status DecodeParams(const Json& params, DiffCheckpointRequest& out) {
  return DecodeOneId(params, DiffCheckpointRequest::kMethod, "checkpoint", out.checkpoint);
}
Status DecodeParams(const Json& params, MountCheckpointRequest& out) {
  Params p(MountCheckpointRequest::kMethod, params);
  SPECULA_TRY(ReadId(p, "checkpoint", out.checkpoint));
  SPECULA_ASSIGN_OR_RETURN(out.dir, p.String("dir"));
  SPECULA_TRY(p.Finish());
  return ValidateAbsolutePath("dir", out.dir);
}
Status DecodeParams(const Json& params, UmountCheckpointRequest& out) {
  Params p(UmountCheckpointRequest::kMethod, params);
  SPECULA_ASSIGN_OR_RETURN(out.dir, p.String("dir"));
  SPECULA_TRY(p.Finish());
  return ValidateAbsolutePath("dir", out.dir);
}

}  // namespace specula::api
