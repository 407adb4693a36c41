// The wire contract of speculad (docs/api.md): one struct per JSON-RPC
// message, requests and responses of every method, with their JSON beside
// them. The daemon's handlers decode requests and encode responses with it,
// the CLI renders what it decodes, the agents talk to the daemon through it
// (rpc::Client's typed Call), and the MCP server and Python client docs are
// written against it. Nothing here knows the speculation core.
//
// Each request names its method (kMethod) and its reply type (Response).
// Decoding a reply is tolerant of what is absent (a field missing from an
// older daemon keeps its default) and strict about types (a string where a
// bool belongs is an error); decoding a request's params is strict (see
// DecodeParams).
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace specula::api {

using Json = nlohmann::json;

// Ids (session, branch, checkpoint) are strings on the wire; a reply that
// carries a number is read as its decimal text. Times are RFC 3339 UTC
// strings. Durations are integer milliseconds; they are held as double so
// that a client keeps what a peer sent, and encoded as integers when whole.

// ---------------------------------------------------------------- daemon.*

struct PingResponse {
  bool pong = true;
};
struct PingRequest {
  static constexpr const char* kMethod = "daemon.ping";
  using Response = PingResponse;
};

struct VersionResponse {
  std::string version;
  int protocol = 1;
  int64_t pid = 0;
  std::string socket;
  std::string state_dir;
  std::string started;
  // Always true: a daemon without the speculation core no longer exists.
  // Kept because clients check it.
  bool core = true;
};
struct VersionRequest {
  static constexpr const char* kMethod = "daemon.version";
  using Response = VersionResponse;
};

struct MethodsRequest {
  static constexpr const char* kMethod = "daemon.methods";
  using Response = std::vector<std::string>;
};

// ---------------------------------------------------------------- session.*

struct CreateSessionResponse {
  std::string session;
  std::string head;  // the root checkpoint
};
// Transparent speculation (docs/api.md "Transparent speculation"): after
// every commit, session create and rollback the daemon itself proposes the
// next commands from the session's history and launches up to k of them as
// branches at the lowest CPU weight; a later action.commit matches them.
struct SpeculationConfig {
  std::string speculator = "none";  // "builtin" | "openai" | "none"
  uint32_t k = 3;                   // branches after each commit, at most (1..16)
  double min_p = 0;                 // candidates under this confidence are never launched
  std::string launch = "rule";      // "rule": the launch rule with measured costs; "all": every candidate >= min_p
  std::string model = {};           // openai: the model name
  std::string endpoint = {};        // openai: base URL (e.g. http://127.0.0.1:8000/v1)
  // The agent driving the session ("claude-code", "my-loop"; "" = unnamed):
  // the built-in speculator learns each agent's habits from its finished
  // sessions in this daemon, and a name the shipped model knows uses its table.
  std::string agent = {};
};

struct CreateSessionRequest {
  static constexpr const char* kMethod = "session.create";
  using Response = CreateSessionResponse;
  std::string base = "/";        // absolute directory: the tree the agent administers
  std::string target = "layer";  // "layer" (promote seals a layer) or "base" (promote writes the base)
  std::string policy;            // absolute path of a policy TOML or a shipped policy's name; "": the default
  std::string name;              // optional label; unique among live sessions when set
  std::optional<SpeculationConfig> speculation = {};  // absent: no transparent speculation
};

// session.show's account of its transparent speculation.
struct SpeculationStatus {
  SpeculationConfig config = {};
  uint64_t proposals = 0;  // proposal rounds run
  uint64_t launched = 0;   // branches launched
  uint64_t hits = 0;       // commits that promoted one of them
  double cost_ms = 0;      // the launch rule's branch cost c at the last round
  double saving_ms = 0;    // and its expected saving of a hit D
  std::string last_error;  // the last speculation failure (e.g. model endpoint down), "" if none
  // The head of the last round that finished (its branches launched), ""
  // before the first: a client that lets speculation settle before its next
  // commit (a test, a benchmark's pacing) waits until it equals its head.
  std::string round_head;
};

// session.list's elements and session.show's reply.
struct Session {
  std::string session;
  std::string name;
  std::string base;
  std::string target;  // "layer" | "base"
  std::string policy;  // "default", "(inline)" or the policy file
  std::string head;    // current checkpoint
  std::string created;
  uint32_t checkpoints = 0;
  uint32_t live_branches = 0;  // starting/running/blocked/done
  std::optional<SpeculationStatus> speculation = {};  // absent: off
};
struct ListSessionsRequest {
  static constexpr const char* kMethod = "session.list";
  using Response = std::vector<Session>;
};
struct ShowSessionRequest {
  static constexpr const char* kMethod = "session.show";
  using Response = Session;
  std::string session;
};

struct DestroySessionResponse {
  std::string session;
  bool destroyed = true;
};
struct DestroySessionRequest {
  static constexpr const char* kMethod = "session.destroy";
  using Response = DestroySessionResponse;
  std::string session;
};

struct RollbackResponse {
  std::string session;
  std::string head;  // == the checkpoint rolled back to
};
struct RollbackRequest {
  static constexpr const char* kMethod = "session.rollback";
  using Response = RollbackResponse;
  std::string session;
  std::string checkpoint;
};

// ---------------------------------------------------------------- action.*

// The params of action.speculate and action.commit.
struct ActionParams {
  std::string session;
  std::string command;      // run by bash in the session
  uint64_t timeout_ms = 0;  // 0: the policy's action_timeout_ms
};

struct SpeculateResponse {
  std::string branch;
};
struct SpeculateRequest : ActionParams {
  static constexpr const char* kMethod = "action.speculate";
  using Response = SpeculateResponse;
};

// A change on a lossy path: an effect the policy let escape the sandbox,
// as the branch's lossy journal recorded it.
struct LossyEffect {
  std::string tag;   // the policy's tag for the path
  std::string kind;  // "write" | "create" | "delete"; in branch.show also "restore" | "restore_failed" | "skipped"
  std::string path;  // the affected path (absolute)
  std::string rule;  // the policy's lossy path covering it (a directory or glob)
  bool compensated = false;  // a pre-image was kept (written back on discard)
  std::string detail;        // "60 -> 10", "mode 644 -> 600", ...
};

// What a promote onto the base left out (core::PromoteNote).
struct PromoteNote {
  std::string path;    // relative to the base
  std::string action;  // "stripped" | "not applied"
  std::string detail;  // "setuid bit", "xattr security.foo", "fifo", "device node ...", ...
};

// The result of an action, as action.commit returns it.
struct CommitResponse {
  bool hit = false;          // a speculative branch with this command was promoted
  std::string branch;        // the branch whose result this is (also on a miss)
  int exit_code = -1;        // -1 when killed by a signal
  int signal = 0;
  std::string stdout_text;   // "stdout" on the wire; capped (policy stdout_cap)
  std::string stderr_text;   // "stderr"
  bool truncated = false;    // either stream hit its cap
  double duration_ms = 0;    // the action's own run time
  double saved_ms = 0;       // latency the caller did not wait for thanks to speculation
  std::string head;          // the new head checkpoint
  std::vector<LossyEffect> lossy_effects;
  std::vector<std::string> flags;  // e.g. "nondeterministic", "timed_out"
  std::vector<PromoteNote> promote_notes;  // session target "base": what the base did not get
};
struct CommitRequest : ActionParams {
  static constexpr const char* kMethod = "action.commit";
  using Response = CommitResponse;
  // Send the output as OutputChunk notifications while the command runs,
  // before the reply (which still carries all of it). Only sent when true,
  // so a request to a daemon without streaming stays valid.
  bool stream = false;
};

// action.commit's live output (docs/api.md "Streaming output"), sent with
// stream: true on the caller's connection as a JSON-RPC notification
// before the call's reply:
//   {"jsonrpc":"2.0","method":"action.output",
//    "params":{"session":"s1","branch":"b2","stream":"stdout","data":"one\n"}}
// A miss sends its run's output as it is written; a hit (its action ran
// before the commit) sends its whole output at once, right before the
// reply; an empty stream sends nothing. The chunks of a stream, concatenated, are the reply's
// text (capped like it); each chunk ends on a UTF-8 character boundary
// and holds at most 64 KiB (api::OutputChunker, output_chunker.h).
struct OutputChunk {
  static constexpr const char* kMethod = "action.output";
  std::string session;
  std::string branch;  // == the reply's branch
  std::string stream;  // "stdout" | "stderr"
  std::string data;
};

struct AbortResponse {
  uint32_t discarded = 0;  // branches discarded
};
struct AbortRequest {
  static constexpr const char* kMethod = "action.abort";
  using Response = AbortResponse;
  std::string session;
};

// ---------------------------------------------------------------- branch.*

// A finished branch's result (BranchSummary::result).
struct BranchResult {
  int exit_code = -1;
  int signal = 0;
  double duration_ms = 0;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  bool truncated = false;
  // The captured text itself (already capped by the policy): an agent engine
  // pre-launches its next model call with a finished branch's output. An
  // older daemon sent only the sizes: then these are absent.
  std::optional<std::string> stdout_text;  // "stdout"
  std::optional<std::string> stderr_text;  // "stderr"
};

// Why the daemon launched a branch (transparent speculation); a branch a
// client launched with action.speculate has none.
struct BranchOrigin {
  std::string source = {};  // "speculator:builtin", "speculator:openai:<model>"
  double confidence = 0;    // the speculator's estimate that it is the next command
  std::string rule = {};    // the speculator's rule or model that proposed it
};

struct BranchSummary {
  std::string branch;
  std::string session;
  std::string state;  // starting|running|blocked|done|promoted|discarded|failed
  std::string command;
  std::string parent_checkpoint;
  std::string created;
  std::optional<BranchResult> result;  // null until done
  std::optional<BranchOrigin> origin = {};  // absent: launched by a client (or a commit's own run)
};
struct ListBranchesRequest {
  static constexpr const char* kMethod = "branch.list";
  using Response = std::vector<BranchSummary>;
  std::string session;
};

struct JournalEntry {  // one line of the branch's effect journal (from eBPF)
  std::string kind;    // "open" | "unlink" | "rename" | "exec" | "connect" | ...
  std::string path;    // or the endpoint
  std::string detail;  // e.g. "-> <rename target>", the process name, "(error -13)"
  std::string tag;     // lossy tag when the effect escaped the sandbox, else ""
};

struct SyscallEvent {  // a deferred or denied syscall
  std::string syscall;
  std::string detail;  // decoded arguments, when known
  std::string state;   // deferred: "waiting" | "released" | "killed"; denied: "denied"
};

struct BranchDetail : BranchSummary {
  std::vector<JournalEntry> journal;
  std::vector<SyscallEvent> deferred;
  std::vector<SyscallEvent> denied;
  std::vector<LossyEffect> lossy_effects;
  uint64_t upper_bytes = 0;  // size of the branch's private upper dir
  std::vector<std::string> flags;
  std::string reason;  // why it ended ("promoted by commit", "discarded: abort", ...); "" while live
};
struct ShowBranchRequest {
  static constexpr const char* kMethod = "branch.show";
  using Response = BranchDetail;
  std::string branch;
};

struct DiffFile {
  std::string path;
  std::string change;  // "added" | "changed" | "deleted"
  std::string type;    // "file" | "dir" | "symlink" | "other"; "" when not known
  std::string diff;    // unified diff for text files, else ""
};
struct BranchDiff {
  std::string branch;
  std::vector<DiffFile> files;
};
struct DiffBranchRequest {
  static constexpr const char* kMethod = "branch.diff";
  using Response = BranchDiff;
  std::string branch;
};

// ---------------------------------------------------------------- checkpoint.*

struct Checkpoint {
  std::string checkpoint;
  std::string parent;  // "" (null on the wire) for a session's root
  std::string session;
  std::string command;  // the action that produced it ("" for the root)
  std::string created;
  uint32_t layers = 0;
  bool has_process_image = false;  // a CRIU image of surviving processes
  uint64_t image_bytes = 0;
  std::string cwd;  // the shell's working directory in this checkpoint
};
struct ListCheckpointsRequest {
  static constexpr const char* kMethod = "checkpoint.list";
  using Response = std::vector<Checkpoint>;
  std::string session;
};
struct ShowCheckpointRequest {
  static constexpr const char* kMethod = "checkpoint.show";
  using Response = Checkpoint;
  std::string checkpoint;
};

// What a checkpoint changed in the files relative to its parent: the layer
// its commit sealed, over the parent's view.
struct CheckpointDiff {
  std::string checkpoint;
  std::string parent;  // "" (null on the wire) for a session's root, which changed nothing
  std::vector<DiffFile> files;
};
struct DiffCheckpointRequest {
  static constexpr const char* kMethod = "checkpoint.diff";
  using Response = CheckpointDiff;
  std::string checkpoint;
};

struct MountCheckpointResponse {
  std::string checkpoint;
  std::string dir;
};
struct MountCheckpointRequest {
  static constexpr const char* kMethod = "checkpoint.mount";
  using Response = MountCheckpointResponse;
  std::string checkpoint;
  std::string dir;  // absolute, an existing empty directory
};

struct UmountCheckpointResponse {
  std::string dir;
};
struct UmountCheckpointRequest {
  static constexpr const char* kMethod = "checkpoint.umount";
  using Response = UmountCheckpointResponse;
  std::string dir;
};

// ---------------------------------------------------------------- JSON

// Every message of the contract, for code that must name them all.
#define SPECULA_API_MESSAGES(X)                                                              \
  X(PingResponse) X(PingRequest) X(VersionResponse) X(VersionRequest) X(MethodsRequest)      \
  X(CreateSessionResponse) X(SpeculationConfig) X(CreateSessionRequest) X(SpeculationStatus) X(Session) X(ListSessionsRequest)         \
  X(ShowSessionRequest) X(DestroySessionResponse) X(DestroySessionRequest)                   \
  X(RollbackResponse) X(RollbackRequest) X(SpeculateResponse) X(SpeculateRequest)            \
  X(LossyEffect) X(PromoteNote) X(CommitResponse) X(CommitRequest) X(OutputChunk) X(AbortResponse) X(AbortRequest) \
  X(BranchResult) X(BranchOrigin) X(BranchSummary) X(ListBranchesRequest) X(JournalEntry) X(SyscallEvent)    \
  X(BranchDetail) X(ShowBranchRequest) X(DiffFile) X(BranchDiff) X(DiffBranchRequest)        \
  X(Checkpoint) X(ListCheckpointsRequest) X(ShowCheckpointRequest) X(CheckpointDiff)        \
  X(DiffCheckpointRequest)                                                                   \
  X(MountCheckpointResponse) X(MountCheckpointRequest) X(UmountCheckpointResponse)           \
  X(UmountCheckpointRequest)

// nlohmann's conversions, found by argument-dependent lookup. from_json
// throws on a type mismatch: callers go through FromJson below.
#define SPECULA_API_DECLARE_JSON(T)  \
  void to_json(Json& j, const T& v); \
  void from_json(const Json& j, T& v);
SPECULA_API_MESSAGES(SPECULA_API_DECLARE_JSON)
#undef SPECULA_API_DECLARE_JSON

// A request type of this contract.
template <typename T>
concept WireRequest = requires {
  { T::kMethod } -> std::convertible_to<const char*>;
  typename T::Response;
};

// Any message (or vector of messages) as JSON.
template <typename T>
Json ToJson(const T& value) {
  Json j = value;
  return j;
}

// A reply decoded; `what` (the method) names it in the error, which is
// kInternal: the daemon and this client disagree about the contract.
template <typename T>
Result<T> FromJson(const Json& j, std::string_view what) {
  try {
    return j.get<T>();
  } catch (const std::exception& e) {
    return Error(Code::kInternal, std::string(what) + ": unexpected reply: " + e.what());
  }
}

// Server side: a request's params decoded strictly, as docs/api.md
// "Conventions" and "Transport rules" say: required ids present and valid
// (ValidateId), commands valid (ValidateCommand), paths absolute, optional
// params of the right type, and no param the method does not know. Errors
// are invalid_argument and name the method and the param.
Status DecodeParams(const Json& params, PingRequest& out);
Status DecodeParams(const Json& params, VersionRequest& out);
Status DecodeParams(const Json& params, MethodsRequest& out);
Status DecodeParams(const Json& params, CreateSessionRequest& out);
Status DecodeParams(const Json& params, ListSessionsRequest& out);
Status DecodeParams(const Json& params, ShowSessionRequest& out);
Status DecodeParams(const Json& params, DestroySessionRequest& out);
Status DecodeParams(const Json& params, RollbackRequest& out);
Status DecodeParams(const Json& params, SpeculateRequest& out);
Status DecodeParams(const Json& params, CommitRequest& out);
Status DecodeParams(const Json& params, AbortRequest& out);
Status DecodeParams(const Json& params, ListBranchesRequest& out);
Status DecodeParams(const Json& params, ShowBranchRequest& out);
Status DecodeParams(const Json& params, DiffBranchRequest& out);
Status DecodeParams(const Json& params, ListCheckpointsRequest& out);
Status DecodeParams(const Json& params, ShowCheckpointRequest& out);
Status DecodeParams(const Json& params, DiffCheckpointRequest& out);
Status DecodeParams(const Json& params, MountCheckpointRequest& out);
Status DecodeParams(const Json& params, UmountCheckpointRequest& out);

}  // namespace specula::api
