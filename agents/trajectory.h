// Recorded agent trajectories (docs/trajectories.md): one JSONL file per
// trajectory, a header line then one line per step with the command, the
// actor's think time before it, and the recorded outcome.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "agents/environment.h"
#include "common/error.h"

namespace specula::agents {

struct TrajectoryStep {
  std::string command;
  double think_ms = 0;                   // the actor's time to decide this step
  std::optional<ActionOutcome> recorded;  // absent in an unrecorded draft
};

struct Trajectory {
  std::string name;      // unique in the corpus; also the file's stem
  std::string category;  // users, permissions, config, logs, cron, build, service, backup, deb, ...
  std::string task;      // the instruction the agent was given
  std::vector<TrajectoryStep> steps;
};

// Parses one trajectory from JSONL text. Every line is validated: unknown
// "type", missing command, negative think time are errors naming the line.
Result<Trajectory> ParseTrajectory(std::string_view jsonl);
Result<Trajectory> LoadTrajectory(const std::string& path);
std::string SerializeTrajectory(const Trajectory& t);
Status SaveTrajectory(const Trajectory& t, const std::string& path);

// Every *.jsonl under dir, sorted by name; names must be unique.
Result<std::vector<Trajectory>> LoadCorpus(const std::string& dir);
// $SPECULA_TRAJECTORIES, else the corpus in the source tree.
std::string DefaultCorpusDir();

// Runs every step with `env` and compares exit code and stdout/stderr with the
// recording; returns one message per mismatch (empty: all as recorded).
// `record` instead overwrites the recording with what happened.
Result<std::vector<std::string>> ReplayAgainst(Trajectory& t, Environment& env, bool record);

}  // namespace specula::agents
