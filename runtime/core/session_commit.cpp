// Commit (the match rule, promote or run non-speculatively), rollback, and
// the read-only queries over branches and checkpoints.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/crash_point.h"
#include "common/files.h"
#include "common/time.h"
#include "runtime/api/match.h"
#include "runtime/api/validate.h"
#include "runtime/apply/apply.h"
#include "runtime/core/session_internal.h"

namespace specula::core {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

int64_t MsBetween(steady_clock::time_point a, steady_clock::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// The instrumentation's contribution to a commit's answer.
void FillReport(CommitResult& out, const std::optional<instrument::BranchReport>& rep) {
  if (!rep) return;
  out.lossy_effects = instrument::EscapedLossyEffects(*rep);
  for (const auto& f : rep->flags) {
    if (std::find(out.flags.begin(), out.flags.end(), f) == out.flags.end()) out.flags.push_back(f);
  }
}

// What the record of a branch that is no longer live holds.
BranchInfo InfoFromRecord(const store::BranchRecord& rec) {
  BranchInfo info;
  info.id = rec.id;
  info.session = rec.session;
  info.parent_checkpoint = rec.parent_checkpoint;
  info.command = rec.command;
  info.state = StateFromString(rec.state).value_or(BranchState::kFailed);
  info.result = ResultFromJson(rec.result_json);
  info.error = rec.error;
  info.upper_bytes = rec.upper_bytes;
  info.created_ms = rec.created_ms;
  info.reason = rec.reason;
  info.origin = rec.origin_json;
  if (!rec.report_json.empty()) {
    // Written by this daemon from instrument::ToJson; unreadable only if the
    // database was damaged, and then the rest of the record still shows.
    auto j = nlohmann::json::parse(rec.report_json, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) info.report = std::move(j);
  }
  return info;
}

// The promote kept the files but not the processes (PromoteLocked's note
// without a path): the flag says so at a glance.
void FlagProcessesNotKept(CommitResult& out) {
  for (const auto& n : out.promote_notes) {
    if (n.path.empty() && n.action == kProcessesNotKept) {
      out.flags.push_back("processes_not_kept");
      return;
    }
  }
}

void FillResult(CommitResult& out, const sandbox::ActionResult& r) {
  out.exit_code = r.exit_code;
  out.signal = r.signal;
  out.stdout_data = r.stdout_data;
  out.stderr_data = r.stderr_data;
  out.truncated = r.stdout_truncated || r.stderr_truncated;
  out.timed_out = r.timed_out;
  out.duration_ms = r.duration.count();
}

// Why a commit discards the branches it did not promote.
constexpr const char* kOtherCommand = "discarded: commit of a different command";

}  // namespace

Result<CommitResult> SessionManager::Commit(const std::string& session, const std::string& command,
                                            milliseconds timeout, const CommitOutputSink& on_output) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(session));
  SPECULA_TRY(api::ValidateCommand(command));
  std::lock_guard op(s->op_mu);
  if (commits_since_trim_.fetch_add(1) + 1 >= kTrimEvery) {
    commits_since_trim_ = 0;
    ReturnFreedMemory();
  }
  // However it ends, the pool follows the head (before the op lock goes).
  PoolRefillAtExit refill{[this, &s] { RefillPool(s); }};
  auto commit_start = steady_clock::now();
  std::string want = api::NormaliseCommand(command, s->policy.speculation.normalisations);
  std::shared_ptr<Branch> hit;
  std::string head;
  {
    std::lock_guard lock(s->mu);
    head = s->rec.head;
    for (auto& [id, b] : s->live) {
      if (b->parent_checkpoint != head || b->normalised != want) continue;
      std::lock_guard bl(b->mu);
      if (b->state == BranchState::kFailed || b->cancelled) continue;
      hit = b;
      break;
    }
  }
  CommitResult out;
  if (hit) {
    // Its siblings are discarded once it is in; those not started yet never
    // start, so it does not queue behind them for a slot (a session with
    // lossy paths runs one branch at a time).
    {
      std::lock_guard lock(s->mu);
      for (auto& [id, b] : s->live) {
        if (b == hit) continue;
        std::lock_guard bl(b->mu);
        if (b->state == BranchState::kStarting) b->cancelled = true;
      }
    }
    s->slot_cv.notify_all();
    // The command is now authorised: let its deferred syscalls through and
    // wait for the action to finish.
    bool authorised = false;
    for (;;) {
      std::unique_lock lock(hit->mu);
      if (hit->finished) break;
      sandbox::Sandbox* box = hit->sandbox.get();
      lock.unlock();
      if (box != nullptr && !authorised) {
        if (Status st = box->AuthoriseDeferred(); !st.ok()) spdlog::warn("commit {}: {}", hit->id, st.ToString());
        authorised = true;
      }
      lock.lock();
      hit->cv.wait_for(lock, milliseconds(5), [&] { return hit->finished; });
    }
    int64_t waited = MsBetween(commit_start, steady_clock::now());
    if (hit->worker.joinable()) hit->worker.join();
    bool usable;
    std::string unusable;  // why not, for the branch's record
    {
      std::lock_guard bl(hit->mu);
      usable = hit->state == BranchState::kDone && hit->result.has_value();
      if (!usable) unusable = std::string("discarded: matched the commit but was ") + ToString(hit->state);
      // The policy may refuse to promote a branch that read nondeterministic
      // input (its result may differ from a run now): treat it as a miss.
      if (usable && !s->policy.speculation.promote_nondeterministic && hit->report &&
          hit->report->HasFlag(instrument::kFlagNondeterministic)) {
        spdlog::info("commit {}: hit {} read nondeterministic input; policy says run afresh", session, hit->id);
        usable = false;
        unusable = "discarded: read nondeterministic input (policy speculation.promote_nondeterministic)";
      }
    }
    if (!usable) DiscardLocked(*s, hit, unusable);
    if (usable) {
      {
        std::lock_guard lock(s->mu);
        s->live.erase(hit->id);
      }
      {
        std::lock_guard lock(mu_);
        branches_.erase(hit->id);
      }
      auto promoted = PromoteLocked(*s, *hit);
      if (promoted.ok()) {
        // The siblings saw the hit's lossy writes; their discards must not
        // undo them.
        lossy::LossyJournal::CommittedState committed;
        if (hit->probe) committed = hit->probe->lossy_journal().Committed();
        DiscardAllInBackground(s, kOtherCommand, &committed);
        out.hit = true;
        out.branch = hit->id;
        FillResult(out, *hit->result);
        // Its action ran before this commit: no live output, the whole text
        // at once, and only now that the hit is sure to be the answer.
        if (on_output) {
          if (!out.stdout_data.empty()) on_output(hit->id, sandbox::OutputStream::kStdout, out.stdout_data);
          if (!out.stderr_data.empty()) on_output(hit->id, sandbox::OutputStream::kStderr, out.stderr_data);
        }
        out.saved_ms = std::max<int64_t>(0, out.duration_ms - waited);
        out.head = *promoted;
        out.promote_notes = hit->promote_notes;
        if (hit->parent_has_image) out.flags.push_back("restored_processes");
        FlagProcessesNotKept(out);
        FillReport(out, hit->report);
        return out;
      }
      // The branch ran but cannot become the head (e.g. its processes could
      // not be checkpointed): drop it; the environment is still exactly the
      // head, so running the command afresh keeps the commit lossless.
      spdlog::warn("commit {}: promote of hit {} failed, running non-speculatively: {}", session, hit->id,
                   promoted.error().ToString());
      // Back among its siblings: its lossy restore has its place in their
      // order (lossy_journal.h), so it is discarded with them.
      {
        std::lock_guard bl(hit->mu);
        hit->error = "promote: " + promoted.error().ToString();
        hit->discard_reason = "discarded: matched the commit but its promote failed";
      }
      {
        std::lock_guard lock(s->mu);
        s->live[hit->id] = hit;
      }
      std::lock_guard lock(mu_);
      branches_[hit->id] = hit;
    }
  }
  DiscardAllInBackground(s, kOtherCommand);

  // Miss: run the command itself in a sandbox from the head, a warm one
  // when the pool has it (made speculative: raised to the policy's weight).
  std::shared_ptr<Branch> run = TakePooled(*s, head);
  const bool pooled = run != nullptr;
  if (!pooled) {
    run = std::make_shared<Branch>();
    SPECULA_ASSIGN_OR_RETURN(run->id, store::NewId('b'));
  }
  run->session = session;
  run->parent_checkpoint = head;
  run->command = command;
  run->created_ms = NowMs();
  auto got = store_->GetCheckpoint(head);
  Status put = got.ok() ? store_->PutBranch(store::BranchRecord{run->id, session, head, command,
                                                                 ToString(BranchState::kRunning), "",
                                                                 run->created_ms, run->created_ms})
                        : Status(got.error());
  if (!put.ok()) {
    if (pooled) DestroyPooled(*run);  // no record yet: nothing else knows of it
    return std::move(put).error().Context("commit " + session);
  }
  const store::CheckpointRecord& ckpt = *got;
  run->parent_has_image = ckpt.has_process_image;
  auto fail = [&](Error e) -> Error {
    if (run->sandbox) (void)run->sandbox->Destroy();
    if (run->probe) (void)run->probe->Discard();
    run->error = e.ToString();  // run is this thread's own: nobody else reads it yet
    (void)RecordBranch(*run, BranchState::kFailed, "");
    (void)RemoveTree(store_->BranchDir(run->id));
    return std::move(e.Context("commit " + session));
  };
  const Error stopping = Error(Code::kUnavailable, "speculad is stopping: the command was stopped before it "
                                                   "finished and nothing of it was kept")
                             .WithHint("run it again once speculad is back (the session and its head are kept)");
  if (shutting_down_) return fail(stopping);
  if (pooled) {
    if (Status st = run->sandbox->SetCpuWeight(s->policy.resources.cpu_weight); !st.ok()) {
      return fail(std::move(st).error().Context("warm sandbox " + run->id));
    }
  } else {
    auto sb = ForkSandbox(*s, ckpt, *run, /*speculative=*/false);
    if (!sb.ok()) return fail(std::move(sb).error());
    run->sandbox = std::move(*sb);
  }
  {
    std::lock_guard lock(s->mu);
    s->committing_cgroup = run->sandbox->cgroup2_path();
  }
  // BeginShutdown may have looked before the cgroup was registered.
  if (shutting_down_) {
    std::lock_guard lock(s->mu);
    s->committing_cgroup.clear();
    return fail(stopping);
  }
  // The commit's own run is authorised: deferred calls go through at once.
  if (Status st = run->sandbox->AuthoriseDeferred(); !st.ok()) return fail(std::move(st).error());
  sandbox::OutputSink live;
  if (on_output) {
    live = [&on_output, &id = run->id](sandbox::OutputStream stream, std::string_view data) {
      on_output(id, stream, data);
    };
  }
  auto r = run->sandbox->Run(command, timeout, live);
  {
    std::lock_guard lock(s->mu);
    s->committing_cgroup.clear();
  }
  // Killed by BeginShutdown (or ended just then): never promoted.
  if (shutting_down_) return fail(stopping);
  if (!r.ok()) return fail(std::move(r).error());
  run->result = std::move(*r);
  NoteDiskLimit(*s, *run);
  FinishProbe(*run);
  // Result and report recorded before the promote (a crash in it still
  // leaves them); the size comes with the promoted record, from the seal.
  (void)RecordBranch(*run, BranchState::kDone, "", std::nullopt, MeasureUpper::kNo);
  auto promoted = PromoteLocked(*s, *run);
  if (!promoted.ok()) return fail(std::move(promoted).error());
  out.hit = false;
  out.branch = run->id;
  FillResult(out, *run->result);
  out.head = *promoted;
  out.promote_notes = run->promote_notes;
  if (run->parent_has_image) out.flags.push_back("restored_processes");
  FlagProcessesNotKept(out);
  FillReport(out, run->report);
  return out;
}

Status SessionManager::Rollback(const std::string& session, const std::string& checkpoint) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(session));
  std::lock_guard op(s->op_mu);
  SPECULA_ASSIGN_OR_RETURN(auto target, store_->GetCheckpoint(checkpoint));
  if (target.session != session) {
    return Error(Code::kInvalidArgument, "checkpoint " + checkpoint + " is not in session " + session);
  }
  DiscardAllLocked(*s, "discarded: rollback");
  PoolRefillAtExit refill{[this, &s] { RefillPool(s); }};
  std::string head;
  {
    std::lock_guard lock(s->mu);
    head = s->rec.head;
  }
  if (s->rec.target == "base") {
    // The base holds the applied effects of every checkpoint from the root
    // to the head: undo them newest first, down to the target, which must
    // therefore be an ancestor of the head.
    std::vector<store::CheckpointRecord> path;
    for (std::string id = head; id != checkpoint;) {
      if (id.empty()) {
        return Error(Code::kFailedPrecondition, "rollback of a base-target session to " + checkpoint +
                                                    ": not an ancestor of the head " + head);
      }
      SPECULA_ASSIGN_OR_RETURN(auto c, store_->GetCheckpoint(id));
      id = c.parent;
      path.push_back(std::move(c));
    }
    for (const auto& c : path) {
      if (!c.apply_record.empty()) {
        SPECULA_TRY_CTX(apply::Revert(c.apply_record, s->rec.base),
                        "rollback " + session + ": revert " + c.id);
      }
      // A crash here leaves the base at c's parent and the head at c: crash
      // recovery moves the head (a reverted head is an unfinished rollback).
      CrashPoint("rollback.after-revert");
      // The base now shows c's parent: record progress at once so a failure
      // further down leaves the head true to the base.
      SPECULA_TRY(store_->SetHead(session, c.parent));
      std::lock_guard lock(s->mu);
      s->rec.head = c.parent;
    }
    return Status::Ok();
  }
  SPECULA_TRY(store_->SetHead(session, checkpoint));
  std::lock_guard lock(s->mu);
  s->rec.head = checkpoint;
  return Status::Ok();
}

Result<BranchInfo> SessionManager::ShowBranch(const std::string& branch) {
  auto live = FindBranch(branch);
  if (!live.ok()) {
    SPECULA_ASSIGN_OR_RETURN(auto rec, store_->GetBranch(branch));
    return InfoFromRecord(rec);
  }
  auto& b = *live;
  BranchInfo info;
  {
    // The sandbox is only destroyed with b->mu held (DiscardLocked), so it
    // is safe to ask it under the lock.
    std::lock_guard lock(b->mu);
    info.id = b->id;
    info.session = b->session;
    info.parent_checkpoint = b->parent_checkpoint;
    info.command = b->command;
    info.origin = b->origin;
    info.state = b->state;
    info.result = b->result;
    info.error = b->error;
    if (info.state == BranchState::kDiscarded) info.reason = b->discard_reason;  // teardown still running
    info.created_ms = b->created_ms;
    if (!b->finished && b->sandbox) info.deferred = b->sandbox->PendingDeferred();
    if (b->report) info.report = instrument::ToJson(*b->report);
  }
  if (!info.deferred.empty() && info.state == BranchState::kRunning) info.state = BranchState::kBlocked;
  // Failed is final even while the branch waits in memory for its discard.
  if (info.state == BranchState::kFailed) info.reason = "failed: " + info.error;
  auto bytes = DiskUsage(store_->BranchUpperDir(info.id));
  if (bytes.ok()) info.upper_bytes = *bytes;
  return info;
}

Result<std::vector<BranchInfo>> SessionManager::ListBranches(const std::string& session) {
  SPECULA_ASSIGN_OR_RETURN(auto recs, store_->ListBranches(session));
  std::vector<BranchInfo> out;
  for (const auto& r : recs) {
    // Only live branches need more than their record (deferred calls, the
    // upper size now, a report not yet written).
    if (!FindBranch(r.id).ok()) {
      out.push_back(InfoFromRecord(r));
      continue;
    }
    SPECULA_ASSIGN_OR_RETURN(auto info, ShowBranch(r.id));
    out.push_back(std::move(info));
  }
  return out;
}

Status SessionManager::WaitBranch(const std::string& branch, milliseconds timeout) {
  auto live = FindBranch(branch);
  if (!live.ok()) return store_->GetBranch(branch).status();  // finished long ago, or unknown
  auto& b = *live;
  std::unique_lock lock(b->mu);
  if (!b->cv.wait_for(lock, timeout, [&] { return b->finished; })) {
    return Error(Code::kDeadlineExceeded, "branch " + branch + " still " + ToString(b->state));
  }
  return Status::Ok();
}

Result<std::vector<FileChange>> SessionManager::DiffBranch(const std::string& branch) {
  SPECULA_ASSIGN_OR_RETURN(auto b, FindBranch(branch));
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(b->session));
  SPECULA_ASSIGN_OR_RETURN(auto layers, CheckpointLayerDirs(b->parent_checkpoint));
  std::vector<std::string> lowers(layers.rbegin(), layers.rend());  // topmost first
  lowers.push_back(s->rec.base);
  apply::DiffOptions o;
  o.unified = false;
  const std::string upper = store_->BranchUpperDir(branch);
  std::vector<FileChange> out;
  {
    // A branch still starting may not have its volume yet: it has changed
    // nothing so far, which is an empty diff, not a missing branch.
    std::lock_guard lock(b->mu);
    struct stat st {};
    if (b->state == BranchState::kStarting && ::stat(upper.c_str(), &st) != 0 && errno == ENOENT) return out;
  }
  SPECULA_ASSIGN_OR_RETURN(auto diff, apply::DiffUpper(upper, lowers, o));
  for (const auto& e : diff.entries) {
    ChangeKind k = e.kind == apply::DiffKind::kAdded     ? ChangeKind::kAdded
                   : e.kind == apply::DiffKind::kDeleted ? ChangeKind::kDeleted
                                                         : ChangeKind::kChanged;
    out.push_back(FileChange{"/" + e.path, k});
  }
  return out;
}

Result<CheckpointChanges> SessionManager::DiffCheckpoint(const std::string& checkpoint) {
  SPECULA_ASSIGN_OR_RETURN(auto c, store_->GetCheckpoint(checkpoint));
  CheckpointChanges out;
  if (c.parent.empty()) return out;  // the root: the base as it was
  out.parent = c.parent;
  SPECULA_ASSIGN_OR_RETURN(auto p, store_->GetCheckpoint(c.parent));
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(c.session));
  const std::string hint = "diff a branch before it is committed (branch.diff), or mount the checkpoint and its "
                           "parent (checkpoint.mount) and compare them";
  if (s->rec.target != "layer") {
    return Error(Code::kFailedPrecondition, "checkpoint " + checkpoint + " was promoted into the session's base, " +
                                                "so no layer holds its changes").WithHint(hint);
  }
  bool on_top = c.layers.size() == p.layers.size() + 1 && std::equal(p.layers.begin(), p.layers.end(), c.layers.begin());
  if (!on_top) {
    return Error(Code::kFailedPrecondition, "checkpoint " + checkpoint + ": its commit squashed the session's " +
                                                "layers, so its own changes are no longer a layer of their own")
        .WithHint(hint);
  }
  out.upper = store_->LayerPath(c.layers.back());
  for (auto it = p.layers.rbegin(); it != p.layers.rend(); ++it) out.lowers.push_back(store_->LayerPath(*it));
  out.lowers.push_back(s->rec.base);
  apply::DiffOptions o;
  o.unified = false;
  SPECULA_ASSIGN_OR_RETURN(auto diff, apply::DiffUpper(out.upper, out.lowers, o));
  for (const auto& e : diff.entries) {
    ChangeKind k = e.kind == apply::DiffKind::kAdded     ? ChangeKind::kAdded
                   : e.kind == apply::DiffKind::kDeleted ? ChangeKind::kDeleted
                                                         : ChangeKind::kChanged;
    out.changes.push_back(FileChange{"/" + e.path, k});
  }
  return out;
}

Result<std::vector<store::CheckpointRecord>> SessionManager::ListCheckpoints(const std::string& session) {
  SPECULA_TRY(FindSession(session).status());
  return store_->ListCheckpoints(session);
}

Result<store::CheckpointRecord> SessionManager::ShowCheckpoint(const std::string& checkpoint) {
  return store_->GetCheckpoint(checkpoint);
}

Status SessionManager::RecordBranch(Branch& b, BranchState st, const std::string& reason,
                                    std::optional<uint64_t> upper_bytes, MeasureUpper measure) {
  store::BranchUpdate u;
  u.state = ToString(st);
  bool first = false;
  {
    std::lock_guard lock(b.mu);
    // Result and report are final once written (a later promote or discard
    // only adds its outcome): serialised once; an unset field keeps its row.
    first = !b.outcome_recorded && (b.result || b.report);
    if (first) {
      if (b.result) u.result_json = ResultToJson(*b.result);
      // Actions may touch paths that are not UTF-8; the record must not fail.
      if (b.report) {
        u.report_json = instrument::ToJson(*b.report).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    }
    if (!b.error.empty()) u.error = b.error;
    if (!reason.empty()) u.reason = reason;
    else if (st == BranchState::kFailed) u.reason = "failed: " + (b.error.empty() ? "unknown error" : b.error);
    if (!upper_bytes) upper_bytes = b.recorded_upper;
  }
  if (!upper_bytes && measure == MeasureUpper::kIfUnknown) {
    // Gone (promoted into a layer, removed by a discard): the last figure stays.
    std::string upper = store_->BranchUpperDir(b.id);
    if (::access(upper.c_str(), F_OK) == 0) {
      if (auto bytes = DiskUsage(upper); bytes.ok()) upper_bytes = *bytes;
    }
  }
  u.upper_bytes = upper_bytes;
  SPECULA_TRY_CTX(store_->UpdateBranch(b.id, u), "record branch " + b.id);
  std::lock_guard lock(b.mu);
  if (first) b.outcome_recorded = true;
  if (upper_bytes && b.finished && b.state == BranchState::kDone) b.recorded_upper = upper_bytes;
  return Status::Ok();
}

}  // namespace specula::core
