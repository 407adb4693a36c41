// The actor: the agent's main model, deciding the next shell command from the
// history. A call is asynchronous (launched, then waited for or cancelled)
// because the engine pre-launches the actor's next call on a speculated
// history while the current one is still running.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agents/environment.h"
#include "common/error.h"

namespace specula::agents {

using Clock = std::chrono::steady_clock;

struct Turn {
  std::string command;
  ActionOutcome outcome;
};

struct History {
  std::string task;
  std::vector<Turn> turns;
};

struct ActorDecision {
  bool done = false;     // the agent finished (no more commands)
  std::string command;   // when !done
  std::string message;   // final answer or free text that came with the call
  uint64_t tokens = 0;   // tokens the call cost, when the backend reports them
};

// One in-flight actor call.
class ActorCall {
 public:
  virtual ~ActorCall() = default;
  // Waits until the decision is ready or `deadline` passes; nullopt if not
  // ready yet. Once ready, returns the same decision every time.
  virtual std::optional<Result<ActorDecision>> WaitUntil(Clock::time_point deadline) = 0;
  // Abandons the call (a pre-launched call whose branch missed). Idempotent.
  virtual void Cancel() = 0;
  // When the call was launched.
  virtual Clock::time_point launched() const = 0;
};

class Actor {
 public:
  virtual ~Actor() = default;
  virtual Result<std::unique_ptr<ActorCall>> Launch(const History& history) = 0;
  virtual std::string Name() const = 0;
};

// An ActorCall that runs a blocking function on its own thread; the function
// polls `cancelled` (the HTTP client aborts its transfer on it). Destroying
// the call cancels it and detaches the thread, which owns its shared state,
// so dropping a cancelled pre-launch never waits for the transfer to wind down.
class ThreadedActorCall : public ActorCall {
 public:
  using Body = std::function<Result<ActorDecision>(const std::atomic<bool>& cancelled)>;
  explicit ThreadedActorCall(Body body);
  ~ThreadedActorCall() override;
  ThreadedActorCall(const ThreadedActorCall&) = delete;
  ThreadedActorCall& operator=(const ThreadedActorCall&) = delete;

  std::optional<Result<ActorDecision>> WaitUntil(Clock::time_point deadline) override;
  void Cancel() override { state_->cancelled = true; }
  Clock::time_point launched() const override { return launched_; }

 private:
  struct State {
    std::atomic<bool> cancelled{false};
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<ActorDecision>> result;
  };
  Clock::time_point launched_;
  std::shared_ptr<State> state_;
};

}  // namespace specula::agents
