// Decisions drawn from a branch's effect events: did the action leave
// processes running (then its checkpoint needs a CRIU dump; otherwise layers
// + shell state suffice: "checkpoint elision"), and did it read
// nondeterministic input (then a hit may not replay the same result).
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "ebpf/effect_event.h"

namespace specula::ebpf {

// Processes (tgids) forked during the events' window that have no exit
// event: the ones the action left running. Sorted ascending.
std::vector<pid_t> ProcessesLeftRunning(std::span<const EffectEvent> events);
// True when ProcessesLeftRunning is not empty.
bool LeftLiveProcesses(std::span<const EffectEvent> events);

// True when the action took input the next run might not see again:
// getrandom, a successful open of /dev/random or /dev/urandom, a receive of
// data from an IPv4/IPv6 socket, or a successful connect/send to a
// non-loopback address (the reply is outside the sandbox's control).
// Clock reads are not traced (vDSO) and never count.
bool ReadNondeterministicInput(std::span<const EffectEvent> events);

// Everything the checkpoint decision needs about one action.
struct ActionTrace {
  std::span<const EffectEvent> events;
  // The tracer saw every event: no ring-buffer drops for the branch's cgroup
  // and the fork/exit hooks were attached (EffectTracer::Complete).
  bool complete = false;
  // Processes the tracer does not know may be alive from before the action
  // (e.g. restored from a CRIU image, so their pids are new): dump again.
  bool processes_before = false;
  // Processes known to be alive from earlier actions of this sandbox (the
  // previous plan's `running`): an action that makes them exit frees the
  // next checkpoint from its dump.
  std::span<const pid_t> carried;
};

struct CheckpointPlan {
  bool criu_dump = true;       // false: layers + shell state only
  std::string reason;          // why, for the journal and `specula branch show`
  std::vector<pid_t> running;  // tracked live tgids after the action: carry into the next ActionTrace
};

// Elide the CRIU dump only when it is provably unnecessary: a complete trace,
// no untracked processes from before, and every carried or newly forked
// process has exited. Anything unknown means "dump".
CheckpointPlan DecideCheckpoint(const ActionTrace& trace);

}  // namespace specula::ebpf
