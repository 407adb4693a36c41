// The speculator interface lives in speculators/ (specula_speculators), so
// that the daemon can use it too; the engine uses it through these names.
// The engine keeps its own history (actor.h) and hands speculators their
// view of it (ToSpeculatorHistory / ToSpeculatorStep).
#pragma once

#include <string>

#include "agents/actor.h"
#include "speculators/history.h"
#include "speculators/speculator.h"

namespace specula::agents {

using speculators::Candidate;
using speculators::NormalizeCandidates;
using speculators::Speculator;

// One committed turn as a speculator sees it.
speculators::Step ToSpeculatorStep(const Turn& turn);
// The whole history; `agent` and `task_id` identify who runs which task
// (the built-in speculator learns per agent and replays earlier runs).
speculators::History ToSpeculatorHistory(const History& history, const std::string& agent = "",
                                         const std::string& task_id = "");

}  // namespace specula::agents
