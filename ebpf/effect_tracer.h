// The effect tracer: ebpf/effects.bpf.c loaded ONCE per daemon, shared by
// every branch. A branch registers its cgroup2 id with a callback; the kernel
// side emits events only for tasks in registered cgroups (or below them), so
// filtering costs untraced processes one map lookup per hooked syscall.
//
//   auto tracer = EffectTracer::Load();             // probes, loads, attaches
//   EffectJournal journal;
//   tracer->AddCgroup(sandbox.cgroup2_id(), journal.Sink());
//   tracer->Start();                                 // consumer thread
//   ... run the action, wait for it ...
//   tracer->Drain();                                 // everything it did is now delivered
//   DecideCheckpoint({journal.Snapshot(), tracer->Complete(id), ...});
//
// Program types the kernel refuses (ProbeProgramTypes) and syscall
// tracepoints it lacks are switched off; the rest keeps working, and
// unavailable_programs() says what is missing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "ebpf/effect_event.h"

namespace specula::ebpf {

// A thread-safe, append-only list of one branch's events: the branch journal.
class EffectJournal {
 public:
  using Callback = std::function<void(const EffectEvent&)>;
  // A callback that appends to this journal; the journal must outlive its use
  // (remove the cgroup from the tracer before destroying the journal).
  Callback Sink();
  void Append(const EffectEvent& e);
  std::vector<EffectEvent> Snapshot() const;
  std::vector<EffectEvent> Take();  // returns and clears
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::vector<EffectEvent> events_;
};

// How system calls are hooked (both sets are in effects.bpf.c).
enum class SyscallHooks {
  kAuto,            // tracepoints if possible, else raw
  kTracepoints,     // syscalls:sys_enter_X/sys_exit_X: only hooked syscalls run a program (needs tracefs)
  kRawTracepoints,  // raw sys_enter/sys_exit: no tracefs, fast to detach, a short test on every syscall
};

struct EffectTracerOptions {
  uint32_t path_max = 1024;       // bytes read per path (<= 1024); shorter is cheaper
  bool trace_descendants = true;  // attribute events of child cgroups to a registered ancestor
  // The consumer thread is woken when this many bytes of events are pending
  // (about 2 KiB each) and otherwise every poll_interval: batching keeps the
  // traced action from paying a context switch per event. 0: wake per event.
  uint64_t wakeup_bytes = 256 * 1024;
  std::chrono::milliseconds poll_interval{50};
  SyscallHooks hooks = SyscallHooks::kAuto;
  // Ring buffer size: a power of two, at least one page. Events (about
  // 2 KiB each) that do not fit are dropped and counted per cgroup.
  uint32_t ring_bytes = 8u << 20;
};

class EffectTracer {
 public:
  using Callback = std::function<void(const EffectEvent&)>;

  // Probes program types, mounts tracefs at /sys/kernel/tracing if no tracefs
  // is mounted (syscall tracepoints are attached through it; if that fails,
  // the raw hook set is used), loads and attaches. kUnavailable if nothing
  // could be attached.
  static Result<std::unique_ptr<EffectTracer>> Load(const EffectTracerOptions& options = {});

  ~EffectTracer();  // stops the consumer, detaches, unloads
  EffectTracer(const EffectTracer&) = delete;
  EffectTracer& operator=(const EffectTracer&) = delete;

  // Starts tracing tasks in cgroup2 id `cgroup_id` (and its descendants);
  // cb runs on the consumer thread (or inside Drain) for each event and must
  // not call back into the tracer. kAlreadyExists if registered.
  Status AddCgroup(uint64_t cgroup_id, Callback cb);
  // Stops tracing, delivers what is already in the ring buffer, then forgets
  // the callback. kNotFound if not registered.
  Status RemoveCgroup(uint64_t cgroup_id);

  // Starts a consumer thread that delivers events as they come. Without it,
  // events are delivered only by Drain().
  Status Start();
  void Stop();  // idempotent
  // Delivers everything in the ring buffer now; returns how many events.
  // Events of a process are in the buffer before its parent's wait() returns.
  Result<int> Drain();

  struct CgroupStats {
    uint64_t emitted = 0;  // events the kernel submitted for the cgroup
    uint64_t dropped = 0;  // events lost to a full ring buffer
  };
  Result<CgroupStats> Stats(uint64_t cgroup_id) const;
  // True when the fork/exit hooks are attached and nothing of the cgroup was
  // dropped: its process accounting can be trusted (checkpoint elision).
  bool Complete(uint64_t cgroup_id) const;

  bool ProcessAccountingAvailable() const;
  // Programs not attached, with the reason ("sys_enter_openat2: no such tracepoint").
  std::vector<std::string> unavailable_programs() const;
  size_t attached_programs() const;
  SyscallHooks syscall_hooks() const;  // the set in use (never kAuto)
  // Events that arrived for a cgroup with no callback (removed meanwhile);
  // in-kernel filtering makes this 0 unless a cgroup was removed mid-flight.
  uint64_t unmatched_events() const { return unmatched_.load(); }

  struct Impl;

 private:
  explicit EffectTracer(std::unique_ptr<Impl> impl);
  void Dispatch(const EffectEvent& e);
  static int OnSample(void* ctx, void* data, size_t size);
  void ConsumerLoop();

  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> unmatched_{0};
};

}  // namespace specula::ebpf
