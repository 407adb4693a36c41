#include "ebpf/effect_analysis.h"

#include <sys/socket.h>

#include <algorithm>
#include <set>

namespace specula::ebpf {

std::vector<pid_t> ProcessesLeftRunning(std::span<const EffectEvent> events) {
  // Events are in ring-buffer order, but a child's exit can in principle be
  // committed before its parent's fork record (two CPUs), so count both
  // sides over the whole window instead of replaying in order.
  std::set<pid_t> forked, exited;
  for (const EffectEvent& e : events) {
    if (e.op == EffectOp::kFork) forked.insert(e.child_tgid());
    if (e.op == EffectOp::kExit) exited.insert(e.tgid);
  }
  std::vector<pid_t> left;
  std::set_difference(forked.begin(), forked.end(), exited.begin(), exited.end(),
                      std::back_inserter(left));
  return left;
}

bool LeftLiveProcesses(std::span<const EffectEvent> events) {
  return !ProcessesLeftRunning(events).empty();
}

bool ReadNondeterministicInput(std::span<const EffectEvent> events) {
  for (const EffectEvent& e : events) {
    switch (e.op) {
      case EffectOp::kGetrandom:
        if (e.result > 0) return true;
        break;
      case EffectOp::kOpenRandom:
        if (e.ok()) return true;
        break;
      case EffectOp::kRecv:
        if (e.result > 0 && (e.socket_family() == AF_INET || e.socket_family() == AF_INET6)) return true;
        break;
      case EffectOp::kConnect:
      case EffectOp::kSend:
        if (e.ok() && (e.addr.family == AF_INET || e.addr.family == AF_INET6) && !e.addr.IsLoopback()) {
          return true;
        }
        break;
      default:
        break;
    }
  }
  return false;
}

CheckpointPlan DecideCheckpoint(const ActionTrace& trace) {
  CheckpointPlan plan;
  if (!trace.complete) {
    plan.reason = "trace incomplete (dropped events or no fork/exit hooks): dump to be safe";
    return plan;
  }
  if (trace.processes_before) {
    plan.reason = "untracked processes from before the action may still run";
    return plan;
  }
  std::set<pid_t> live(trace.carried.begin(), trace.carried.end());
  for (pid_t p : ProcessesLeftRunning(trace.events)) live.insert(p);
  for (const EffectEvent& e : trace.events) {
    if (e.op == EffectOp::kExit) live.erase(e.tgid);
  }
  plan.running.assign(live.begin(), live.end());
  if (!plan.running.empty()) {
    plan.reason = std::to_string(plan.running.size()) + " process(es) still running (tgid";
    for (size_t i = 0; i < plan.running.size() && i < 8; ++i) plan.reason += " " + std::to_string(plan.running[i]);
    if (plan.running.size() > 8) plan.reason += " ...";
    plan.reason += ")";
    return plan;
  }
  plan.criu_dump = false;
  plan.reason = "no live processes: layers and shell state only";
  return plan;
}

}  // namespace specula::ebpf
