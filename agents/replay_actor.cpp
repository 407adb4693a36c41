#include "agents/replay_actor.h"

#include <thread>

namespace specula::agents {
namespace {

// A call whose answer is known in advance and becomes visible at ready_at:
// no thread needed.
class TimedCall : public ActorCall {
 public:
  TimedCall(Clock::time_point launched, Clock::time_point ready_at, ActorDecision decision)
      : launched_(launched), ready_at_(ready_at), decision_(std::move(decision)) {}

  std::optional<Result<ActorDecision>> WaitUntil(Clock::time_point deadline) override {
    if (cancelled_) return Result<ActorDecision>(Error(Code::kAborted, "actor call cancelled"));
    std::this_thread::sleep_until(std::min(deadline, ready_at_));
    if (Clock::now() < ready_at_) return std::nullopt;
    return Result<ActorDecision>(decision_);
  }
  void Cancel() override { cancelled_ = true; }
  Clock::time_point launched() const override { return launched_; }

 private:
  Clock::time_point launched_, ready_at_;
  ActorDecision decision_;
  bool cancelled_ = false;
};

}  // namespace

ReplayActor::ReplayActor(Trajectory trajectory, ReplayTiming timing)
    : trajectory_(std::move(trajectory)), timing_(timing) {}

double ReplayActor::ThinkMs(size_t index, const History& history) const {
  double ms = 0;
  if (timing_.mode == ReplayTiming::Mode::kRecorded) {
    // The final "done" call costs as much as the first step's thinking.
    size_t i = index < trajectory_.steps.size() ? index : 0;
    ms = trajectory_.steps.empty() ? 0 : trajectory_.steps[i].think_ms;
  } else {
    size_t bytes = history.task.size();
    for (const auto& t : history.turns) {
      bytes += t.command.size() + t.outcome.stdout_text.size() + t.outcome.stderr_text.size();
    }
    ms = timing_.base_ms + timing_.per_kib_ms * static_cast<double>(bytes) / 1024.0;
  }
  return ms * timing_.scale;
}

Result<std::unique_ptr<ActorCall>> ReplayActor::Launch(const History& history) {
  size_t index = history.turns.size();
  if (index > trajectory_.steps.size()) {
    return Error(Code::kInvalidArgument, "replay " + trajectory_.name + ": history longer than trajectory");
  }
  ActorDecision d;
  if (index == trajectory_.steps.size()) {
    d.done = true;
    d.message = "trajectory complete";
  } else {
    d.command = trajectory_.steps[index].command;
  }
  auto now = Clock::now();
  auto think = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(ThinkMs(index, history)));
  return std::unique_ptr<ActorCall>(new TimedCall(now, now + think, std::move(d)));
}

ThreadedActorCall::ThreadedActorCall(Body body)
    : launched_(Clock::now()), state_(std::make_shared<State>()) {
  std::thread([state = state_, body = std::move(body)] {
    Result<ActorDecision> r = body(state->cancelled);
    std::lock_guard lock(state->mu);
    state->result = std::move(r);
    state->cv.notify_all();
  }).detach();
}

ThreadedActorCall::~ThreadedActorCall() { state_->cancelled = true; }

std::optional<Result<ActorDecision>> ThreadedActorCall::WaitUntil(Clock::time_point deadline) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_until(lock, deadline, [&] { return state_->result.has_value(); });
  return state_->result;
}

}  // namespace specula::agents
