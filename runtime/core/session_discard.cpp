// SessionManager's discards (DESIGN.md: a discarded branch leaves the
// environment exactly as before): in place, in the order lossy paths need,
// or with the teardown on the background queue so the caller does not wait.
#include <malloc.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/files.h"
#include "runtime/core/session_internal.h"

namespace specula::core {

bool HasLossyPaths(const policy::Policy& p) {
  return std::any_of(p.paths.begin(), p.paths.end(),
                     [](const policy::PathRule& r) { return r.mode == policy::PathMode::kLossy; });
}

uint32_t RunningLimit(const policy::Policy& p) {
  return HasLossyPaths(p) ? 1 : p.speculation.max_concurrent_branches;
}

void SessionManager::DiscardLocked(Session& s, const std::shared_ptr<Branch>& b, const std::string& reason,
                                   const lossy::LossyJournal::CommittedState* committed) {
  StopBranch(s, *b);
  FinishDiscard(s, b, reason, committed);
}

void SessionManager::StopBranch(Session& s, Branch& b) {
  sandbox::Sandbox* box = nullptr;
  {
    std::lock_guard lock(b.mu);
    b.cancelled = true;
    b.state = BranchState::kDiscarded;
    box = b.sandbox.get();
  }
  s.slot_cv.notify_all();
  // Destroy kills the action, which ends the worker's Run.
  if (box != nullptr) {
    if (Status st = box->Destroy(); !st.ok()) spdlog::warn("discard {}: {}", b.id, st.ToString());
  }
  if (b.worker.joinable()) b.worker.join();
  // Taken out under the lock: ShowBranch may be asking it for deferred calls.
  std::unique_ptr<sandbox::Sandbox> doomed;
  {
    std::lock_guard lock(b.mu);
    doomed = std::move(b.sandbox);
  }
  if (doomed) {
    if (Status st = doomed->Destroy(); !st.ok()) spdlog::warn("discard {}: {}", b.id, st.ToString());
  }
}

void SessionManager::FinishDiscard(Session& s, const std::shared_ptr<Branch>& b, const std::string& reason,
                                   const lossy::LossyJournal::CommittedState* committed) {
  // After the sandbox is gone, so nothing writes a lossy path again.
  if (b->probe) {
    if (Status st = b->probe->Discard(committed); !st.ok()) spdlog::error("discard {}: lossy restore: {}", b->id, st.ToString());
  }
  // Measured before the dir goes (the record keeps what the branch wrote),
  // unless it was measured when the branch finished and froze.
  std::optional<uint64_t> upper;
  std::string why = reason;
  {
    std::lock_guard lock(b->mu);
    upper = b->recorded_upper;
    if (!b->discard_reason.empty()) why = b->discard_reason;
  }
  if (!upper) {
    if (auto bytes = DiskUsage(store_->BranchUpperDir(b->id)); bytes.ok()) upper = *bytes;
  }
  if (Status st = RemoveTree(store_->BranchDir(b->id)); !st.ok()) {
    spdlog::warn("discard {}: {}", b->id, st.ToString());
  }
  if (Status st = RecordBranch(*b, BranchState::kDiscarded, why, upper); !st.ok()) {
    spdlog::warn("discard {}: record: {}", b->id, st.ToString());
  }
  {
    std::lock_guard lock(s.mu);
    s.live.erase(b->id);
  }
  std::lock_guard lock(mu_);
  branches_.erase(b->id);
}

void SessionManager::DiscardAllLocked(Session& s, const std::string& reason,
                                      const lossy::LossyJournal::CommittedState* committed) {
  std::vector<std::shared_ptr<Branch>> all;
  {
    std::lock_guard lock(s.mu);
    for (auto& [id, b] : s.live) all.push_back(b);
  }
  // Cancel all first so none of them waits for a slot another one holds.
  for (auto& b : all) {
    std::lock_guard lock(b->mu);
    b->cancelled = true;
  }
  for (auto& b : all) StopBranch(s, *b);
  // Newest lossy pre-images first: each is what the sibling before it left
  // (lossy_journal.h), so the oldest one's restore is the one that stays.
  // The workers are joined, so b->probe is settled.
  auto prepared = [](const Branch& b) { return b.probe ? b.probe->lossy_journal().prepared_unix_ns() : 0; };
  std::stable_sort(all.begin(), all.end(), [&](const auto& x, const auto& y) { return prepared(*x) > prepared(*y); });
  for (auto& b : all) FinishDiscard(s, b, reason, committed);
}

Status SessionManager::Abort(const std::string& session) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(session));
  std::lock_guard op(s->op_mu);
  DiscardAllLocked(*s, "discarded: abort");
  return Status::Ok();
}

Status SessionManager::DiscardBranch(const std::string& branch) {
  SPECULA_ASSIGN_OR_RETURN(auto b, FindBranch(branch));
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(b->session));
  std::lock_guard op(s->op_mu);
  {
    std::lock_guard lock(s->mu);
    if (s->live.count(b->id) == 0) return Status::Ok();  // already being discarded
  }
  // Its lossy restore must be done before the session's next action.
  if (HasLossyPaths(s->policy)) {
    DiscardLocked(*s, b, "discarded: branch.discard");
  } else {
    DiscardInBackground(s, b, "discarded: branch.discard");
  }
  return Status::Ok();
}

void SessionManager::DiscardInBackground(const std::shared_ptr<Session>& s, const std::shared_ptr<Branch>& b,
                                         const std::string& reason) {
  std::string cgroup;
  {
    std::lock_guard lock(b->mu);
    b->cancelled = true;
    b->state = BranchState::kDiscarded;
    if (b->discard_reason.empty()) b->discard_reason = reason;
    if (b->sandbox) cgroup = b->sandbox->cgroup2_path();
  }
  // Stopped now, torn down later: a discarded branch must not run on (and
  // compete with the committed path) while the low-priority queue catches up.
  KillCgroup(cgroup);
  s->slot_cv.notify_all();  // a worker waiting for a slot sees the cancel
  {
    std::lock_guard lock(s->mu);
    s->live.erase(b->id);
  }
  {
    std::lock_guard lock(s->reap_mu);
    ++s->reaping;
  }
  reaper_->Post([this, s, b, reason] {
    StopBranch(*s, *b);
    FinishDiscard(*s, b, reason, nullptr);
    {
      std::lock_guard lock(s->reap_mu);
      --s->reaping;
    }
    s->reap_cv.notify_all();
  });
}

void SessionManager::DiscardAllInBackground(const std::shared_ptr<Session>& s, const std::string& reason,
                                            const lossy::LossyJournal::CommittedState* committed) {
  if (HasLossyPaths(s->policy)) return DiscardAllLocked(*s, reason, committed);
  std::vector<std::shared_ptr<Branch>> all;
  {
    std::lock_guard lock(s->mu);
    for (auto& [id, b] : s->live) all.push_back(b);
  }
  for (auto& b : all) DiscardInBackground(s, b, reason);
}

void SessionManager::WaitReaped(Session& s) {
  std::unique_lock lock(s.reap_mu);
  s.reap_cv.wait(lock, [&] { return s.reaping == 0; });
}

void SessionManager::WaitForDiscards() { reaper_->Drain(); }

void SessionManager::ReturnFreedMemory() {
  reaper_->Post([] { ::malloc_trim(0); });
}

}  // namespace specula::core
