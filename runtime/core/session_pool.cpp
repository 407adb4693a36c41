// The warm pool (issue 15): branch sandboxes prepared from a session's head
// while the agent thinks, so speculate and a missed commit find one ready
// instead of building it (namespaces, overlay, cgroup, seccomp, the
// instrumentation, and the CRIU restore of a head with live processes) on
// their path.
//
// A pooled sandbox is made by exactly the code that makes a fresh branch's
// (ForkSandbox, speculative weight) from the same checkpoint, and nothing
// runs in it until it is taken, so a branch on it cannot tell the difference
// (the differential test runs with the pool on). What it does not know yet
// is its command: its id is chosen when it is prepared and becomes the
// branch's id when taken; only then does it get a record. A crash before
// that leaves a branch dir without a record, which crash recovery removes
// like any other.
//
// Lifetime: the pool belongs to one head. A new head (commit, rollback)
// bumps pool_gen; the old generation's ready sandboxes go to the reaper and
// its fills in flight tear down what they made. Fills count in
// Session::reaping, so destroying the session waits for them.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "runtime/core/session_internal.h"

namespace specula::core {

uint32_t PoolTarget(double demand, uint32_t taken, uint32_t max) {
  if (demand < 0) demand = max;
  // Rounded up once a quarter over: a sandbox too many costs an idle init,
  // one too few a cold fork on the caller's path. Never below one: every
  // head ends in a commit, whose own run needs one unless it hits.
  const double expected = std::ceil(demand - 0.25);
  const double left = std::max(1.0, expected - static_cast<double>(taken));
  return static_cast<uint32_t>(std::min<double>(left, max));
}

PoolStats SessionManager::pool_stats() {
  PoolStats st;
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) {
    std::lock_guard lock(s->mu);
    st.ready += s->pool.size();
    st.filling += s->pool_filling;
  }
  st.hits = pool_hits_.load();
  st.misses = pool_misses_.load();
  return st;
}

void SessionManager::RefillPool(const std::shared_ptr<Session>& s) {
  if (opts_.pool_per_session == 0 || !pooler_ || shutting_down_) return;
  if (HasLossyPaths(s->policy)) return;  // session_manager.h: pool_per_session
  std::vector<std::shared_ptr<Branch>> stale;
  std::string head;
  uint64_t gen = 0;
  uint32_t want = 0;
  {
    std::lock_guard lock(s->mu);
    if (s->closed) return;
    head = s->rec.head;
    if (s->pool_head != head) {
      stale.assign(s->pool.begin(), s->pool.end());
      s->pool.clear();
      pooled_ -= static_cast<uint32_t>(stale.size());  // out of the pool now; the reaper tears them down
      s->pool_head = head;
      s->pool_filling = 0;  // the older generation's fills tear down what they make
      ++s->pool_gen;
    }
    gen = s->pool_gen;
    s->FollowHead(head);
    const uint32_t have = static_cast<uint32_t>(s->pool.size()) + s->pool_filling;
    const uint32_t target = PoolTarget(s->demand, s->taken, opts_.pool_per_session);
    // Reserve against the manager's budget before posting: pooled_ counts
    // ready and in-flight sandboxes of every session.
    while (have + want < target) {
      uint32_t cur = pooled_.load();
      if (cur >= opts_.pool_total) break;
      if (!pooled_.compare_exchange_weak(cur, cur + 1)) continue;
      ++want;
    }
    s->pool_filling += want;
  }
  if (!stale.empty()) {
    {
      std::lock_guard lock(s->reap_mu);
      s->reaping += stale.size();
    }
    reaper_->Post([this, s, stale] {
      for (const auto& b : stale) DestroyPooled(*b);
      {
        std::lock_guard lock(s->reap_mu);
        s->reaping -= stale.size();
      }
      s->reap_cv.notify_all();
    });
  }
  if (want == 0) return;
  {
    std::lock_guard lock(s->reap_mu);
    s->reaping += want;
  }
  for (uint32_t i = 0; i < want; ++i) {
    pooler_->Post([this, s, head, gen] {
      FillPooled(s, head, gen);
      {
        std::lock_guard lock(s->reap_mu);
        --s->reaping;
      }
      s->reap_cv.notify_all();
    });
  }
}

void SessionManager::FillPooled(const std::shared_ptr<Session>& s, const std::string& head, uint64_t gen) {
  auto current = [&] { return !s->closed && s->pool_gen == gen && !shutting_down_; };
  auto b = std::make_shared<Branch>();
  Result<std::unique_ptr<sandbox::Sandbox>> sb = Error(Code::kAborted, "pool moved on");
  bool wanted;
  {
    std::lock_guard lock(s->mu);
    wanted = current();
  }
  if (wanted) {
    auto id = store::NewId('b');
    auto ckpt = id.ok() ? store_->GetCheckpoint(head) : Result<store::CheckpointRecord>(id.error());
    if (ckpt.ok()) {
      b->id = *id;
      b->session = s->rec.id;
      b->parent_checkpoint = head;
      b->parent_has_image = ckpt->has_process_image;
      sb = ForkSandbox(*s, *ckpt, *b, /*speculative=*/true);
    } else {
      sb = std::move(ckpt).error();
    }
    if (!sb.ok()) spdlog::warn("session {}: warm pool from {}: {}", s->rec.id, head, sb.error().ToString());
  }
  if (sb.ok()) b->sandbox = std::move(*sb);
  bool kept = false;
  {
    std::lock_guard lock(s->mu);
    if (s->pool_gen == gen && s->pool_filling > 0) --s->pool_filling;
    if (b->sandbox && current()) {
      s->pool.push_back(b);
      kept = true;
    }
  }
  if (!kept) {
    DestroyPooled(*b);
    --pooled_;
  }
}

std::shared_ptr<SessionManager::Branch> SessionManager::TakePooled(Session& s, const std::string& head) {
  if (opts_.pool_per_session == 0) return nullptr;
  std::shared_ptr<Branch> b;
  {
    std::lock_guard lock(s.mu);
    s.FollowHead(head);
    ++s.taken;
    if (s.pool_head == head && !s.pool.empty()) {
      b = std::move(s.pool.front());
      s.pool.pop_front();
    }
  }
  if (!b) {
    if (!HasLossyPaths(s.policy)) ++pool_misses_;
    return nullptr;
  }
  --pooled_;
  ++pool_hits_;
  return b;
}

void SessionManager::DrainPool(Session& s) {
  std::deque<std::shared_ptr<Branch>> doomed;
  {
    std::lock_guard lock(s.mu);
    s.closed = true;
    ++s.pool_gen;
    s.pool_filling = 0;
    doomed.swap(s.pool);
  }
  for (auto& b : doomed) {
    DestroyPooled(*b);
    --pooled_;
  }
}

void SessionManager::DestroyPooled(Branch& b) {
  if (b.sandbox) {
    if (Status st = b.sandbox->Destroy(); !st.ok()) spdlog::warn("warm pool {}: {}", b.id, st.ToString());
    b.sandbox.reset();
  }
  // Nothing ran in it: the lossy journal (none: pooled sessions have no
  // lossy paths) and the probe's maps just go.
  if (b.probe) {
    if (Status st = b.probe->Discard(nullptr); !st.ok()) spdlog::warn("warm pool {}: {}", b.id, st.ToString());
    b.probe.reset();
  }
  if (!b.id.empty()) {
    if (Status st = RemoveTree(store_->BranchDir(b.id)); !st.ok()) spdlog::warn("warm pool {}: {}", b.id, st.ToString());
  }
}

}  // namespace specula::core
