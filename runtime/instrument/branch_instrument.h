// Branch instrumentation: everything a speculative branch needs besides its
// sandbox, behind a few calls the speculation core makes per branch:
//
//   Instrumentation instr;                                   // one per daemon
//   auto probe = instr.Prepare(policy, branch_state_dir);    // lossy pre-images
//   spec.binds = (*probe)->binds();                          // BEFORE Sandbox::Create
//   auto sb = Sandbox::Create(spec);
//   (*probe)->Attach(**sb);                                  // tracer + egress guard
//   ... sb->Run(command) ...
//   auto report = (*probe)->Finish({.processes_before = restored, .carried = prev.running});
//   // report: effects, lossy_effects, flags, denied_egress, checkpoint decision
//   on discard: sb->Destroy(); (*probe)->Discard();          // restores lossy pre-images
//   on promote: (*probe)->Keep();                            // lossy effects stay
//
// The effect tracer is loaded once per Instrumentation, lazily, and shared by
// every branch (loading takes ~0.3 s and unloading ~2.5 s: never per branch).
// When the kernel refuses it, tracing is off (TracingStatus() says why,
// reports carry the flag "untraced" and always ask for a CRIU dump) and
// everything else still works. The egress guard's programs are likewise
// loaded once (at the first Prepare) and shared: a branch only writes its
// policy into their maps and links them to its cgroup (loading them per
// branch cost ~48 ms of every branch fork).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "ebpf/effect_analysis.h"
#include "ebpf/effect_event.h"
#include "ebpf/effect_tracer.h"
#include "ebpf/egress_guard.h"
#include "policies/policy.h"
#include "runtime/lossy/lossy_journal.h"
#include "sandbox/sandbox.h"

namespace specula::instrument {

// Flags a BranchReport may carry (strings, because the daemon passes them
// through to commit/branch.show unchanged).
inline constexpr const char* kFlagNondeterministic = "nondeterministic";  // read randomness / network input
inline constexpr const char* kFlagTraceIncomplete = "trace_incomplete";   // drops, or no fork/exit hooks
inline constexpr const char* kFlagUntraced = "untraced";                  // no effect tracer at all
inline constexpr const char* kFlagEgressDenied = "egress_denied";         // the guard refused a destination
inline constexpr const char* kFlagEgressUnguarded = "egress_unguarded";   // no egress guard (kernel refused)
inline constexpr const char* kFlagLossyEgress = "lossy_egress";           // non-loopback traffic under kLossyEgress
inline constexpr const char* kFlagEffectsTruncated = "effects_truncated"; // report lists only the first N effects

// What one action of a branch did, as far as the instrumentation saw.
struct BranchReport {
  // Traced effects of this action (since Attach or the previous Finish), in
  // delivery order; at most InstrumentationOptions::max_report_effects.
  std::vector<ebpf::EffectEvent> effects;
  uint64_t effects_total = 0;  // before truncation
  // Lossy-path changes journaled for this action (LossyJournal::CollectEffects).
  std::vector<lossy::LossyRecord> lossy_effects;
  std::vector<std::string> flags;  // kFlag* values, each at most once
  uint64_t denied_egress = 0;      // connects/sends the guard refused during this action
  bool traced = false;             // the effect tracer watched this branch
  // Whether the checkpoint after this action needs a CRIU dump; carry
  // `checkpoint.running` into the next Finish of the same sandbox.
  ebpf::CheckpointPlan checkpoint;

  bool HasFlag(std::string_view flag) const;
};

// {"op","path","path2","pid","tgid","result","time_ns","comm"[,"addr"]}
nlohmann::json EffectToJson(const ebpf::EffectEvent& e);
// {"effects":[...],"effects_total","lossy_effects":[LossyRecord::ToJson],
//  "flags":[...],"denied_egress","traced","checkpoint":{"criu_dump","reason","running"}}
nlohmann::json ToJson(const BranchReport& report);
// ebpf::ReadNondeterministicInput without the false positive every program
// linked with glibc >= 2.34 gives it: the first getrandom(8 bytes,
// GRND_NONBLOCK) after a traced exec (malloc's tcache key) is not counted.
// A program whose own first random read is exactly that call is missed.
// `startup_pending` carries, from one batch of events to the next, the
// processes exec'd whose startup call has not been seen yet: a background
// job's exec and its startup getrandom can arrive in different batches.
bool ReadNondeterministicInputAfterStartup(std::span<const ebpf::EffectEvent> events,
                                           std::set<pid_t>& startup_pending);
inline bool ReadNondeterministicInputAfterStartup(std::span<const ebpf::EffectEvent> events) {
  std::set<pid_t> pending;
  return ReadNondeterministicInputAfterStartup(events, pending);
}

// The lossy changes of the action (writes, creates, deletes): the effects
// that escaped the sandbox, which a commit reports. Restores and skipped
// paths are the journal's bookkeeping, not effects.
std::vector<lossy::LossyRecord> EscapedLossyEffects(const BranchReport& report);

struct InstrumentationOptions {
  bool tracing = true;  // false: never load the tracer (reports are "untraced")
  ebpf::EffectTracerOptions tracer;
  lossy::LossyOptions lossy;
  size_t max_report_effects = 10000;  // a build can make millions; the decision still sees all
};

// Arguments of BranchProbe::Finish: what the caller knows about processes
// from before the action (see ebpf::ActionTrace).
struct FinishOptions {
  // Processes the tracer cannot know may be alive (the sandbox was restored
  // from a CRIU image): forces a dump.
  bool processes_before = false;
  // The previous Finish's checkpoint.running for this sandbox.
  std::span<const pid_t> carried;
};

class Instrumentation;

// One branch's instrumentation. Used by one thread at a time (the branch's).
// Destruction detaches (stops tracing the cgroup, detaches the egress guard)
// but does NOT restore lossy pre-images: only Discard() does. Restoring on
// an implicit path (an error unwinding, a daemon shutting down) would undo
// writes of a branch that may still be promoted after a restart; the
// pre-images stay in the state dir, where LossyJournal::Load finds them.
class BranchProbe {
 public:
  ~BranchProbe();
  BranchProbe(const BranchProbe&) = delete;
  BranchProbe& operator=(const BranchProbe&) = delete;

  // Read-write binds of the policy's lossy paths: put them into
  // SandboxSpec::binds before creating the sandbox.
  const std::vector<sandbox::BindMount>& binds() const { return lossy_.binds(); }

  // Starts tracing the sandbox's cgroup and attaches the egress guard
  // (policy.network) to its cgroup2 directory. Call once, before the first
  // action. A tracer or guard the kernel refuses is not an error (the report
  // says "untraced" / "egress_unguarded"); kFailedPrecondition if attached.
  Status Attach(const sandbox::Sandbox& sandbox);

  // After an action (the sandbox's Run returned): delivers the tracer's
  // pending events, collects lossy changes, and decides the checkpoint.
  // Callable once per action; each call reports only what is new.
  // kFailedPrecondition before Attach or after Keep/Discard.
  Result<BranchReport> Finish(const FinishOptions& options = {});

  // The branch is thrown away: detaches, then writes the `restore` lossy
  // pre-images back. Call after the sandbox is destroyed, so no process of
  // it writes again after the restore. Idempotent; an Error names what could
  // not be restored.
  // `committed`: see lossy::LossyJournal::Restore.
  Status Discard(const lossy::LossyJournal::CommittedState* committed = nullptr);
  // The branch is promoted: lossy effects stay as they are; detaches.
  Status Keep();

  bool traced() const { return registered_; }
  // The egress guard enforces the policy's network rules on the branch.
  bool guarded() const { return guard_.has_value(); }
  const lossy::LossyJournal& lossy_journal() const { return lossy_; }

 private:
  friend class Instrumentation;
  BranchProbe(std::shared_ptr<ebpf::EffectTracer> tracer, std::shared_ptr<ebpf::EgressPrograms> egress,
              Status egress_status, const policy::Policy& policy, lossy::LossyJournal lossy,
              size_t max_report_effects);
  void Detach();

  // Shared ownership: a probe that outlives its Instrumentation keeps the
  // tracer loaded until it is gone, instead of calling into freed memory.
  std::shared_ptr<ebpf::EffectTracer> tracer_;  // null: tracing unavailable
  // The shared egress programs (same ownership reason), or null and why not.
  std::shared_ptr<ebpf::EgressPrograms> egress_;
  Status egress_status_;
  policy::Network network_;
  lossy::LossyJournal lossy_;
  size_t max_report_effects_;
  // Heap-allocated: the tracer's callback holds its address.
  std::unique_ptr<ebpf::EffectJournal> journal_;
  std::optional<ebpf::EgressGuard> guard_;
  uint64_t cgroup_id_ = 0;
  bool attached_ = false;
  bool registered_ = false;  // cgroup_id_ is registered with tracer_
  bool discarded_ = false;
  bool closed_ = false;  // Keep or Discard ran: no more Attach/Finish
  uint64_t denied_reported_ = 0;  // guard counters are cumulative
  std::set<pid_t> startup_pending_;  // see ReadNondeterministicInputAfterStartup
  uint64_t lossy_egress_reported_ = 0;
};

// One per daemon (SessionManager). Thread-safe.
class Instrumentation {
 public:
  explicit Instrumentation(InstrumentationOptions options = {});
  ~Instrumentation();
  Instrumentation(const Instrumentation&) = delete;
  Instrumentation& operator=(const Instrumentation&) = delete;

  // Loads the tracer on first use (later calls return the cached outcome):
  // ok when effect tracing is available, else why not.
  Status TracingStatus();

  // Captures the lossy pre-images of `policy` into branch_state_dir (which
  // must exist) and returns the branch's probe. Loads the tracer if needed.
  Result<std::unique_ptr<BranchProbe>> Prepare(const policy::Policy& policy, const std::string& branch_state_dir);

 private:
  // The shared tracer, or null when tracing is unavailable (lazily loaded).
  std::shared_ptr<ebpf::EffectTracer> Tracer();
  // The shared egress programs, or null and why (lazily loaded; only a
  // kUnavailable outcome is final, other failures are retried next branch).
  std::pair<std::shared_ptr<ebpf::EgressPrograms>, Status> Egress();

  InstrumentationOptions options_;
  std::mutex mu_;  // guards the lazy load
  bool load_attempted_ = false;
  Status load_status_;
  std::shared_ptr<ebpf::EffectTracer> tracer_;
  std::mutex egress_mu_;  // guards the lazy load of egress_
  Status egress_unavailable_;  // set once the kernel refused the programs
  std::shared_ptr<ebpf::EgressPrograms> egress_;
};

}  // namespace specula::instrument
