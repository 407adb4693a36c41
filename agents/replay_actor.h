// An actor that plays a recorded trajectory: step i's call returns step i's
// recorded command after its think time, counted from the moment the call is
// launched. So a pre-launched call that the engine keeps finishes earlier,
// exactly as a real model call launched earlier would.
#pragma once

#include "agents/actor.h"
#include "agents/trajectory.h"

namespace specula::agents {

struct ReplayTiming {
  // recorded: each step's think_ms. modelled: base_ms + per_kib_ms for every
  // KiB of history text the model would read (prompt processing grows with it).
  enum class Mode { kRecorded, kModelled } mode = Mode::kRecorded;
  double scale = 1.0;  // multiplies the think time (benchmarks compress time)
  double base_ms = 2000;
  double per_kib_ms = 40;
};

class ReplayActor : public Actor {
 public:
  ReplayActor(Trajectory trajectory, ReplayTiming timing);
  Result<std::unique_ptr<ActorCall>> Launch(const History& history) override;
  std::string Name() const override { return "replay:" + trajectory_.name; }

  // The think time of the call that decides step `index` given `history`.
  double ThinkMs(size_t index, const History& history) const;

 private:
  Trajectory trajectory_;
  ReplayTiming timing_;
};

}  // namespace specula::agents
