// The speculation core (DESIGN.md "The contract"): sessions over a base,
// branches forked from checkpoints that run one action each on a worker
// thread, commit with the match rule, promote to a new checkpoint, discard,
// rollback. The daemon's JSON-RPC layer calls this class; it is thread-safe.
//
// Lifecycle of a branch: starting -> running [-> blocked] -> done (frozen)
// -> promoted | discarded; or failed (the sandbox or CRIU failed: the action
// itself failing is still `done`, with its exit code).
//
// After every committed action the promoted sandbox is checkpointed (its
// upper sealed into a layer, its shell state recorded, a CRIU image taken
// only if processes other than init are alive) and destroyed: every later
// branch starts from that checkpoint, so all branches of a head are equal.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"
#include "runtime/core/background_queue.h"
#include "runtime/criu/criu_driver.h"
#include "runtime/instrument/branch_instrument.h"
#include "runtime/store/checkpoint_store.h"
#include "sandbox/sandbox.h"

namespace specula::core {

enum class BranchState { kStarting, kRunning, kBlocked, kDone, kPromoted, kDiscarded, kFailed };
const char* ToString(BranchState s);

using SandboxFactory =
    std::function<Result<std::unique_ptr<sandbox::Sandbox>>(const sandbox::SandboxSpec&)>;
using RestoredSandboxFactory = std::function<Result<std::unique_ptr<sandbox::Sandbox>>(
    const sandbox::SandboxSpec&, const std::function<Result<pid_t>(const sandbox::RestoreTarget&)>&)>;

struct SessionManagerOptions {
  std::string state_dir = "/var/lib/specula";
  criu::CriuOptions criu;  // kdat_dir empty: <state_dir>/criu-run
  // Squash when a checkpoint would reference more layers than this: the
  // oldest layers are merged into one new layer.
  size_t squash_threshold = 16;
  // Empty: sandbox::Sandbox::Create / CreateRestored.
  SandboxFactory create_sandbox;
  RestoredSandboxFactory create_restored_sandbox;
  // Per-branch instrumentation (effect tracer, egress guard, lossy journal).
  bool instrument = true;
  instrument::InstrumentationOptions instrumentation;
  // Off: every checkpoint takes a CRIU dump even when the action left no
  // live process. Only for measuring what elision saves (the benches).
  bool elide_checkpoints = true;
  // The cgroup parent of this manager's sandboxes; empty:
  // sandbox::InstanceCgroupParent(state_dir), the subtree the daemon's
  // sandbox watch kills when the daemon dies (sandbox/sandbox_watch.h).
  std::string cgroup_parent;
  // Host paths no branch may see besides the state dir, which is always
  // masked (the daemon's socket when it lies outside the state dir and
  // outside /run, which every sandbox replaces with its own tmpfs).
  std::vector<std::string> masked_paths;
  // The warm pool (issue 15): after each commit, rollback and speculate,
  // branch sandboxes are prepared from the session's head in the background
  // (overlay, cgroup, seccomp, instrumentation, the CRIU restore of a head
  // with live processes), and speculate and a missed commit take one
  // instead of forking on their path. How many follows the session: the
  // sandboxes its recent heads were asked for (a running mean, so k
  // speculates and a missed commit a step make k + 1), less those this head
  // already gave, at least 1 (for the commit that ends the head) and at
  // most pool_per_session; at most pool_total across all sessions (each
  // holds an idle init, its mounts and cgroup).
  // 0: no pool. Sessions with lossy paths never pool: a sandbox prepared
  // before the commit's own run would keep lossy pre-images from before it.
  uint32_t pool_per_session = 0;
  uint32_t pool_total = 4;
};

// The warm pool now: sandboxes ready, and being prepared.
struct PoolStats {
  uint64_t ready = 0;
  uint64_t filling = 0;
  uint64_t hits = 0;    // speculates and missed commits that took one
  uint64_t misses = 0;  // ... that found none ready and forked
};

struct SessionInfo {
  store::SessionRecord record;
  size_t live_branches = 0;
};

struct CreateSessionRequest {
  std::string name;
  std::string base = "/";
  policy::PromoteTarget target = policy::PromoteTarget::kLayer;
  policy::Policy policy;
  std::string policy_text;  // stored with the session (shown, and re-parsed after a restart)
  std::string policy_path;
  std::string initial_cwd = "/";
};

struct BranchInfo {
  std::string id;
  std::string session;
  std::string parent_checkpoint;
  std::string command;
  BranchState state = BranchState::kStarting;
  std::optional<sandbox::ActionResult> result;
  std::string error;                          // failed: why
  std::vector<sandbox::DeferredCall> deferred;  // held now (live branches only)
  uint64_t upper_bytes = 0;  // live: now; finished: last measured before its dir went
  int64_t created_ms = 0;
  // The instrumentation's report of the action (once it finished, live or
  // not: it is kept in the branch's record): effect journal, lossy effects,
  // flags, denied egress, checkpoint decision, as instrument::ToJson gives it.
  std::optional<nlohmann::json> report;
  // Why the branch ended: "promoted by commit", "discarded: abort", "failed:
  // <error>", ... Empty while it is live.
  std::string reason;
  // Why it was launched, as given to Speculate (JSON text, e.g. the daemon's
  // transparent speculation: {"source","confidence"}); "" for a client's.
  std::string origin;
};

// The CPU weight (cgroup cpu.weight, 1..10000; cpu.shares on cgroup v1) of a
// speculative branch: a quarter of the committed path's, at least 1.
inline uint32_t SpeculativeCpuWeight(uint32_t committed_weight) {
  return committed_weight >= 4 ? committed_weight / 4 : 1;
}

// What a promote onto the base did not carry over as the branch had it
// (issue 12 "nothing stripped in silence"): the policy's promotion rules
// strip setuid/setgid bits, file capabilities and foreign xattrs, and leave
// device nodes, fifos and sockets out.
// PromoteNote::action of the note (path "") a promote adds when CRIU could
// not checkpoint the processes the action left: the files were kept.
inline constexpr const char* kProcessesNotKept = "processes not kept";
struct PromoteNote {
  std::string path;    // relative to the base
  std::string action;  // "stripped" | "not applied" | "processes not kept" (path "")
  std::string detail;  // "setuid bit", "xattr security.foo", "fifo", ...
};

struct CommitResult {
  bool hit = false;
  std::string branch;  // the promoted branch (a hit), or the non-speculative run's id
  int exit_code = -1;
  int signal = 0;
  std::string stdout_data, stderr_data;
  bool truncated = false;
  bool timed_out = false;
  int64_t duration_ms = 0;  // the action's own run time
  int64_t saved_ms = 0;     // run time the caller did not wait for thanks to a hit
  std::string head;         // the new head checkpoint
  // The lossy-path changes the action made (writes, creates, deletes; not
  // restores), as the branch's lossy journal recorded them.
  std::vector<lossy::LossyRecord> lossy_effects;
  // e.g. "restored_processes", "nondeterministic", "processes_not_kept"
  std::vector<std::string> flags;
  // What the promote left out: files a base's promotion rules stripped, and
  // (path "") processes CRIU could not checkpoint.
  std::vector<PromoteNote> promote_notes;
};

// Commit's live output (docs/api.md "Streaming output"): the id of the
// branch whose output it is (the CommitResult's `branch`), the stream, and
// bytes not handed over before. A miss calls it while its run writes; a hit,
// whose action ran before the commit, calls it once per non-empty stream
// with its whole captured text, after its promote succeeded. Either way the
// calls of one stream add up to the result's text. Called on the commit's
// thread; the bytes are only valid during the call.
using CommitOutputSink =
    std::function<void(const std::string& branch, sandbox::OutputStream stream, std::string_view data)>;

enum class ChangeKind { kAdded, kChanged, kDeleted };
const char* ToString(ChangeKind k);
struct FileChange {
  std::string path;  // absolute inside the sandbox
  ChangeKind kind = ChangeKind::kAdded;
};

// What a checkpoint changed relative to its parent: the layer its commit
// sealed (`upper`) over the parent's view (`lowers`, topmost first, the base
// last).
struct CheckpointChanges {
  std::string parent;  // "" for a session's root (no changes)
  std::string upper;
  std::vector<std::string> lowers;
  std::vector<FileChange> changes;
};

class SessionManager {
 public:
  static Result<std::unique_ptr<SessionManager>> Open(SessionManagerOptions opts);
  ~SessionManager();  // discards every live branch
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // Sessions. Create makes the root checkpoint (no layers, the initial shell
  // state) and returns the session with it as head.
  Result<SessionInfo> CreateSession(const CreateSessionRequest& req);
  Result<std::vector<SessionInfo>> ListSessions();
  Result<SessionInfo> ShowSession(const std::string& session);
  // The id of the live session whose id, else whose name, is id_or_name
  // (names are unique among live sessions: CreateSession refuses a second).
  // kNotFound with a hint to `specula session ls` otherwise.
  Result<std::string> ResolveSession(const std::string& id_or_name);
  // Discards all branches and deletes the session's history and files.
  Status DestroySession(const std::string& session);

  // Starts a branch from the head running `command`; returns its id at once.
  // timeout 0: the policy's action timeout. A command that breaks the
  // contract's rule (api::ValidateCommand: blank, over 1 MiB, a NUL byte) is
  // invalid_argument, here as at the daemon's socket.
  // `origin` (JSON text, "" for none) is kept in the branch's record.
  // `from_head` ("" for any): aborted unless the head is still that
  // checkpoint once this operation runs (after a commit in flight), so that
  // a guess made for one head never starts from the next. With `from_head`
  // set, a live branch of that head running the same command (the match
  // rule's form) is returned instead of starting another one.
  Result<std::string> Speculate(const std::string& session, const std::string& command,
                                std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                const std::string& origin = "", const std::string& from_head = "");
  // The authoritative action (DESIGN.md contract 2). on_output (may be
  // empty) gets its output before Commit returns (CommitOutputSink above).
  Result<CommitResult> Commit(const std::string& session, const std::string& command,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                              const CommitOutputSink& on_output = {});
  // Discards every live branch of the session.
  Status Abort(const std::string& session);
  // Moves the head to an earlier checkpoint of the session.
  Status Rollback(const std::string& session, const std::string& checkpoint);

  // Branches (live ones, and the records of finished ones).
  Result<std::vector<BranchInfo>> ListBranches(const std::string& session);
  Result<BranchInfo> ShowBranch(const std::string& branch);
  // Waits until the branch's action has finished (done/failed/discarded).
  Status WaitBranch(const std::string& branch, std::chrono::milliseconds timeout);
  Status DiscardBranch(const std::string& branch);

  // The daemon is stopping (SIGTERM): every running action is killed, a
  // commit in flight fails with kUnavailable and keeps nothing of its
  // action (the head stays where it was), and no new action starts. Sessions
  // and their history stay for the next start. Idempotent, thread-safe.
  void BeginShutdown();
  // What the branch's upper dir changes, relative to its checkpoint.
  Result<std::vector<FileChange>> DiffBranch(const std::string& branch);

  // Checkpoints.
  Result<std::vector<store::CheckpointRecord>> ListCheckpoints(const std::string& session);
  Result<store::CheckpointRecord> ShowCheckpoint(const std::string& checkpoint);
  // What `checkpoint` changed relative to its parent. failed_precondition
  // when its layers cannot tell: a base-target session (the commit went into
  // the base) or a layer stack squashed by that commit.
  Result<CheckpointChanges> DiffCheckpoint(const std::string& checkpoint);
  // The layer directories (lowest first) a sandbox of `checkpoint` stacks over the base.
  Result<std::vector<std::string>> CheckpointLayerDirs(const std::string& checkpoint);

  store::CheckpointStore& store() { return *store_; }
  // CRIU dumps and restores this manager ran (the daemon's metrics).
  criu::CriuCounters criu_counters() const { return criu_->counters(); }
  PoolStats pool_stats();

  // Returns once every discard asked for so far has released its
  // resources. Commits and branch.discard tear discarded branches down in
  // the background (BackgroundQueue); session.destroy and closing the
  // manager wait for them by themselves.
  void WaitForDiscards();

 private:
  struct Branch;
  struct Session;
  explicit SessionManager(SessionManagerOptions opts) : opts_(std::move(opts)) {}

  Result<std::shared_ptr<Session>> FindSession(const std::string& id);
  Result<std::shared_ptr<Branch>> FindBranch(const std::string& id);
  // A new sandbox over `ckpt` in the branch dir `dir` (restoring its image).
  // Attaches the branch's instrumentation probe (b.probe) when enabled.
  // Speculative branches get a quarter of the policy's CPU weight, so under
  // contention they cannot slow the committed path (DESIGN.md, agents).
  Result<std::unique_ptr<sandbox::Sandbox>> ForkSandbox(const Session& s, const store::CheckpointRecord& ckpt,
                                                        Branch& b, bool speculative);
  // After the branch's action: its instrumentation report (b.report).
  void FinishProbe(Branch& b);
  void RunBranch(std::shared_ptr<Session> s, std::shared_ptr<Branch> b, std::chrono::milliseconds timeout);
  // Checkpoints the sandbox after its action, destroys it, makes the new
  // checkpoint the session's head. Called with the session's op lock held.
  Result<std::string> PromoteLocked(Session& s, Branch& b);
  // The warm pool (session_pool.cpp). RefillPool: drops a pool of an older
  // head and posts fills up to the target; cheap, callable under the op
  // lock. TakePooled: a ready branch (id, sandbox, probe) forked from
  // `head`, or null. DrainPool: tears the pool down and stops refills (a
  // session being destroyed or the manager closing); WaitReaped then waits
  // for fills in flight.
  void RefillPool(const std::shared_ptr<Session>& s);
  std::shared_ptr<Branch> TakePooled(Session& s, const std::string& head);
  void DrainPool(Session& s);
  void FillPooled(const std::shared_ptr<Session>& s, const std::string& head, uint64_t gen);
  void DestroyPooled(Branch& b);
  // `reason` says why, e.g. "discarded: abort"; it is kept in the record.
  // `committed`: what a sibling just promoted left on lossy paths; the
  // discard puts that back there instead of its own pre-images
  // (lossy::LossyJournal::Restore).
  void DiscardLocked(Session& s, const std::shared_ptr<Branch>& b, const std::string& reason,
                     const lossy::LossyJournal::CommittedState* committed = nullptr);
  // DiscardLocked in two halves: stop (cancel, kill, join the worker), then
  // restore lossy paths, record and forget. DiscardAllLocked stops every
  // branch before it restores any, in the order lossy_journal.h asks for.
  void StopBranch(Session& s, Branch& b);
  void FinishDiscard(Session& s, const std::shared_ptr<Branch>& b, const std::string& reason,
                     const lossy::LossyJournal::CommittedState* committed);
  void DiscardAllLocked(Session& s, const std::string& reason,
                        const lossy::LossyJournal::CommittedState* committed = nullptr);
  // Off the caller's path: the branch is cancelled, marked discarded and out
  // of `live` at once; its teardown (StopBranch, FinishDiscard) is queued.
  void DiscardInBackground(const std::shared_ptr<Session>& s, const std::shared_ptr<Branch>& b,
                           const std::string& reason);
  // Every live branch so, unless the policy has lossy paths: their restores
  // must be done, in order, before the session's next action runs, so
  // they are discarded here and now (DiscardAllLocked).
  void DiscardAllInBackground(const std::shared_ptr<Session>& s, const std::string& reason,
                              const lossy::LossyJournal::CommittedState* committed = nullptr);
  // Until no teardown of `s` is queued or running.
  void WaitReaped(Session& s);
  // Queues malloc_trim on the reaper: every commit and branch allocates and
  // frees (outputs, reports, JSON, the threads' arenas) around a few
  // long-lived objects, and glibc keeps the freed pages between them. The
  // soak measured the daemon's anonymous RSS growing ~30 KiB per action
  // (2 sessions x 1100 actions: +68 MiB) with a live heap of a few MiB; a
  // trim gave half of it back at once.
  void ReturnFreedMemory();
  // Records state `st` with all the branch knows (result, report JSON,
  // error) so branch.show can say what it did once it is gone. upper_bytes
  // unset: measured now if the upper dir still exists, unless `measure` is
  // kNo (the caller records the size soon anyway: a commit's own run is
  // sealed next, and the seal measures the layer; one walk, not two).
  // `reason` empty keeps the stored one. Takes b.mu.
  enum class MeasureUpper { kIfUnknown, kNo };
  Status RecordBranch(Branch& b, BranchState st, const std::string& reason,
                      std::optional<uint64_t> upper_bytes = std::nullopt,
                      MeasureUpper measure = MeasureUpper::kIfUnknown);
  Result<std::vector<std::string>> MaybeSquash(Session& s, std::vector<std::string> layers);
  // After the branch's action: logs if its writes reached the policy's disk
  // limit (the action saw EDQUOT; its result is the action's own).
  void NoteDiskLimit(const Session& s, const Branch& b);
  // Open: kills and unmounts what a crashed daemon left, removes branch
  // dirs, finishes or undoes interrupted promotes to the base.
  Status RecoverAfterCrash();

  SessionManagerOptions opts_;
  std::unique_ptr<store::CheckpointStore> store_;
  std::unique_ptr<criu::CriuDriver> criu_;
  // Made once and handed to every sandbox (SandboxSpec): the mapping user
  // namespace of the idmapped layers (null: each sandbox makes its own, as
  // when the kernel refused one at open) and the device allowlist program.
  std::shared_ptr<const sandbox::MappingUserns> idmap_;
  std::shared_ptr<const sandbox::DeviceFilterProgram> device_filter_;
  std::unique_ptr<instrument::Instrumentation> instr_;  // null: instrumentation off
  // After the members its jobs use, so it is destroyed (drained) before them.
  std::unique_ptr<BackgroundQueue> reaper_;
  // Warm-pool fills, at nice 0 (background_queue.h says why); their
  // sandboxes run at the speculative CPU weight.
  std::unique_ptr<BackgroundQueue> pooler_;
  std::atomic<uint32_t> pooled_{0};  // ready or being filled, all sessions
  std::atomic<uint64_t> pool_hits_{0}, pool_misses_{0};
  // Every kTrimEvery commits (and after a session is destroyed) the reaper
  // hands the heap's free pages back to the kernel (ReturnFreedMemory).
  static constexpr uint32_t kTrimEvery = 64;
  std::atomic<uint32_t> commits_since_trim_{0};
  std::mutex mu_;  // guards sessions_ and branches_ (the maps, not their contents)
  // Held for a whole CreateSession: the check that a name is free and the
  // session's insertion are one step (sessions are created rarely).
  std::mutex create_mu_;
  std::atomic<bool> shutting_down_{false};
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::map<std::string, std::shared_ptr<Branch>> branches_;  // live branches
};

}  // namespace specula::core
