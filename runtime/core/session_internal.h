// Private to runtime/core: the in-memory state of sessions and live
// branches shared by session_manager.cpp (lifecycle), session_commit.cpp
// (commit, rollback, queries) and session_discard.cpp (discards).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "runtime/core/session_manager.h"

namespace specula::core {

std::optional<BranchState> StateFromString(const std::string& s);
std::string ResultToJson(const sandbox::ActionResult& r);
std::optional<sandbox::ActionResult> ResultFromJson(const std::string& text);
bool IsFinal(BranchState s);
// SIGKILL to every process of one sandbox, by its cgroup2 dir (cgroup.kill;
// "" or a gone dir: nothing). One write: cheap enough for a caller's path.
void KillCgroup(const std::string& cgroup2_dir);
// Whether the policy binds any lossy path into branches.
bool HasLossyPaths(const policy::Policy& p);
// How many of a session's branches may run their actions at once. Siblings
// share the host's lossy paths, so with any in the policy they run one at a
// time: each one's pre-image is then what the previous one finished with,
// never a write half done (lossy_journal.h).
uint32_t RunningLimit(const policy::Policy& p);

// Runs `refill` when the scope ends, however it ends: a commit or rollback
// that moved the head (or failed half-way) leaves the warm pool following
// the head it left (SessionManager::RefillPool, under the op lock).
struct PoolRefillAtExit {
  std::function<void()> refill;
  ~PoolRefillAtExit() { refill(); }
};

struct SessionManager::Branch {
  std::string id, session, parent_checkpoint, command, normalised;
  std::string origin;  // Speculate's origin (JSON text), "" for none
  int64_t created_ms = 0;
  bool parent_has_image = false;
  std::thread worker;
  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  BranchState state = BranchState::kStarting;
  bool finished = false;   // the worker is done (result, failure or cancel)
  bool cancelled = false;  // discard asked the worker to stop
  std::unique_ptr<sandbox::Sandbox> sandbox;
  std::unique_ptr<instrument::BranchProbe> probe;  // null: not instrumented
  std::optional<instrument::BranchReport> report;  // after the action
  std::optional<sandbox::ActionResult> result;
  std::vector<PromoteNote> promote_notes;  // set by PromoteLocked (onto a base; processes not kept)
  std::string error;
  // Why it is discarded, once a discard is decided: shown while its teardown
  // runs in the background; overrides the discard's own reason when set
  // first (a hit whose promote failed).
  std::string discard_reason;
  std::chrono::steady_clock::time_point run_started{}, run_finished{};
  // What RecordBranch already wrote. Result and report do not change once
  // written. The upper size is kept only while it cannot change: measured
  // for a done speculative branch, which is frozen until a promote thaws it.
  bool outcome_recorded = false;
  std::optional<uint64_t> recorded_upper;
};

struct SessionManager::Session {
  policy::Policy policy;
  std::mutex op_mu;  // one mutating operation (speculate, commit, abort, rollback, destroy) at a time
  std::mutex mu;     // guards rec and live
  store::SessionRecord rec;
  std::map<std::string, std::shared_ptr<Branch>> live;
  // The cgroup2 dir of the sandbox running a commit's action (a miss), for
  // BeginShutdown to kill; empty when none runs.
  std::string committing_cgroup;
  // Slots for policy.speculation.max_concurrent_branches running actions.
  std::mutex slot_mu;
  std::condition_variable slot_cv;
  uint32_t running = 0;
  // Branches out of `live` whose teardown the background queue has not
  // finished: destroying the session (its layers) waits for them.
  std::mutex reap_mu;
  std::condition_variable reap_cv;
  size_t reaping = 0;  // also counts warm-pool fills not finished
  // The warm pool (session_pool.cpp), guarded by mu: branch sandboxes made
  // from pool_head before anyone asks, not yet branches (no record, not in
  // `live`). pool_gen changes with the head: a fill of an older generation
  // tears its sandbox down instead of adding it.
  std::string pool_head;
  std::deque<std::shared_ptr<Branch>> pool;
  uint64_t pool_gen = 0;
  uint32_t pool_filling = 0;  // fills of pool_gen posted and not finished
  // How many sandboxes a head is asked for (speculates and a missed
  // commit, pooled or not): `taken` at `taken_head` so far, and `demand`,
  // the running mean over the earlier heads (each new head counts half;
  // negative: no head seen yet, the pool starts full). The pool of a head
  // holds what its demand says is still to come (PoolTarget).
  std::string taken_head;
  uint32_t taken = 0;
  double demand = -1;
  // Under mu: moves the demand on to `head` (a new head folds the last
  // one's count into the mean).
  void FollowHead(const std::string& head) {
    if (taken_head == head) return;
    if (!taken_head.empty()) {
      const double last = static_cast<double>(taken);
      demand = demand < 0 ? last : 0.5 * demand + 0.5 * last;
    }
    taken_head = head;
    taken = 0;
  }
  bool closed = false;        // being destroyed: no more fills
};

// How many sandboxes the warm pool of a head should hold (ready and being
// filled): what the session's demand (sandboxes asked of each head, a
// running mean; negative: unknown yet, so `max`) says is still to come at
// this head after `taken`, at least one (the commit that ends the head),
// at most `max` (SessionManagerOptions::pool_per_session).
uint32_t PoolTarget(double demand, uint32_t taken, uint32_t max);

}  // namespace specula::core
