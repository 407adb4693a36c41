// What speculad serves, as a C++ interface: one virtual per JSON-RPC method
// of docs/api.md, with plain request/response structs. The handlers
// (handlers.cpp) validate and decode params, call this interface from worker
// threads, and encode the result; the implementation on top of the
// speculation core's SessionManager lives next to it. Every method may be
// called concurrently from several threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace specula::service {

// Timestamps are RFC 3339 UTC strings ("2026-11-28T16:41:46.123Z").

struct CreateSessionRequest {
  std::string base = "/";       // absolute directory: the tree the agent administers
  std::string target = "layer"; // "layer" (promote seals a layer) or "base" (promote writes the base)
  std::string policy_file;      // absolute path of a policy TOML; empty: the built-in default
  std::string name;             // optional label; unique among live sessions when set
};

struct CreateSessionResponse {
  std::string session;
  std::string head;  // the root checkpoint
};

struct SessionInfo {
  std::string session;
  std::string name;
  std::string base;
  std::string target;   // "layer" | "base"
  std::string policy;   // policy name (and file, when it came from one)
  std::string head;     // current checkpoint
  std::string created;
  uint32_t checkpoints = 0;
  uint32_t live_branches = 0;  // starting/running/blocked/done
};

struct ActionRequest {
  std::string session;
  std::string command;      // run by bash in the session
  uint64_t timeout_ms = 0;  // 0: the policy's action_timeout_ms
};

struct LossyEffect {
  std::string tag;     // the policy's tag for the path or effect class
  std::string kind;    // "write" | "unlink" | "rename" | "connect" | ...
  std::string path;    // or the endpoint for network effects
  bool compensated = false;  // a pre-image was kept (written back on discard)
};

// The result of an action, as action.commit returns it.
struct CommitResponse {
  bool hit = false;          // a speculative branch with this command was promoted
  std::string branch;        // the branch whose result this is (also on a miss)
  int exit_code = -1;        // -1 when killed by a signal
  int signal = 0;
  std::string stdout_text;   // capped (policy stdout_cap)
  std::string stderr_text;
  bool truncated = false;    // either stream hit its cap
  uint64_t duration_ms = 0;  // the action's own run time
  uint64_t saved_ms = 0;     // latency the caller did not wait for thanks to speculation
  std::string head;          // the new head checkpoint
  std::vector<LossyEffect> lossy_effects;
  std::vector<std::string> flags;  // e.g. "nondeterministic", "timed_out"
};

struct AbortResponse {
  uint32_t discarded = 0;  // branches discarded
};

struct ActionOutcome {  // a finished branch's result (no stdout/stderr here: see CommitResponse)
  int exit_code = -1;
  int signal = 0;
  uint64_t duration_ms = 0;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  bool truncated = false;
  // The captured text itself (already capped by the policy): an agent engine
  // pre-launches its next model call with a finished branch's output.
  std::string stdout_text;
  std::string stderr_text;
};

struct BranchSummary {
  std::string branch;
  std::string session;
  std::string state;  // starting|running|blocked|done|promoted|discarded|failed
  std::string command;
  std::string parent_checkpoint;
  std::string created;
  std::optional<ActionOutcome> result;  // once done
};

struct EffectEntry {   // one line of the branch's effect journal (from eBPF)
  std::string kind;    // "write" | "create" | "unlink" | "rename" | "exec" | "connect" | ...
  std::string path;    // or endpoint
  std::string detail;  // e.g. rename target, exec argv[0]
  std::string tag;     // lossy tag when the effect escaped the sandbox, else ""
};

struct SyscallEvent {  // a deferred or denied syscall
  std::string syscall;
  std::string detail;     // decoded arguments, when known
  std::string state;      // deferred: "waiting" | "released" | "killed"; denied: "denied"
};

struct BranchDetail {
  BranchSummary summary;
  std::vector<EffectEntry> journal;
  std::vector<SyscallEvent> deferred;
  std::vector<SyscallEvent> denied;
  std::vector<LossyEffect> lossy_effects;
  uint64_t upper_bytes = 0;  // size of the branch's private upper dir
  std::vector<std::string> flags;
  std::string reason;  // why it ended ("promoted by commit", "discarded: abort", ...); "" while live
};

struct FileChange {
  std::string path;
  std::string change;  // "added" | "changed" | "deleted"
  std::string type;    // "file" | "dir" | "symlink" | "other"; "" when not known
  std::string diff;    // unified diff for text files, else ""
};

struct BranchDiff {
  std::string branch;
  std::vector<FileChange> files;
};

struct CheckpointInfo {
  std::string checkpoint;
  std::string parent;   // "" for a session's root
  std::string session;
  std::string command;  // the action that produced it ("" for the root)
  std::string created;
  uint32_t layers = 0;
  bool has_process_image = false;  // a CRIU image of surviving processes
  uint64_t image_bytes = 0;
  std::string cwd;      // the shell's working directory in this checkpoint
};

class SessionService {
 public:
  virtual ~SessionService() = default;

  // Called once at start-up before the socket accepts anyone: reconcile the
  // database with disk and kernel after a crash (see SessionManager::Recover).
  virtual Status Recover() = 0;
  // SIGTERM: abort what is running so that blocked calls return soon; calls
  // may still arrive until the server has drained.
  virtual void BeginShutdown() {}

  virtual Result<CreateSessionResponse> CreateSession(const CreateSessionRequest& req) = 0;
  virtual Result<std::vector<SessionInfo>> ListSessions() = 0;
  virtual Result<SessionInfo> ShowSession(const std::string& session) = 0;
  virtual Status DestroySession(const std::string& session) = 0;
  // Returns the new head (== checkpoint).
  virtual Result<std::string> Rollback(const std::string& session, const std::string& checkpoint) = 0;

  virtual Result<std::string> Speculate(const ActionRequest& req) = 0;  // the branch id
  virtual Result<CommitResponse> Commit(const ActionRequest& req) = 0;
  virtual Result<AbortResponse> Abort(const std::string& session) = 0;

  virtual Result<std::vector<BranchSummary>> ListBranches(const std::string& session) = 0;
  virtual Result<BranchDetail> ShowBranch(const std::string& branch) = 0;
  virtual Result<BranchDiff> DiffBranch(const std::string& branch) = 0;

  virtual Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& session) = 0;
  virtual Result<CheckpointInfo> ShowCheckpoint(const std::string& checkpoint) = 0;
  // A read-only merged view of the checkpoint's filesystem at dir (absolute,
  // an existing empty directory).
  virtual Status MountCheckpoint(const std::string& checkpoint, const std::string& dir) = 0;
  virtual Status UmountCheckpoint(const std::string& dir) = 0;
};

}  // namespace specula::service
