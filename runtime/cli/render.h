// Text renderings of daemon replies for people (the --json output is the
// reply itself). Each takes the decoded reply of one method (runtime/api/wire.h).
#pragma once

#include <string>
#include <vector>

#include "runtime/api/wire.h"
#include "runtime/cli/output.h"

namespace specula::cli {

std::string RenderSessionTable(const std::vector<api::Session>& sessions);       // session.list
std::string RenderSession(const api::Session& session);                          // session.show
std::string RenderBranchTable(const std::vector<api::BranchSummary>& branches);  // branch.list
std::string RenderBranch(const api::BranchDetail& branch);                       // branch.show
std::string RenderDiff(const api::BranchDiff& diff);                             // branch.diff
std::string RenderCheckpointLog(const std::vector<api::Checkpoint>& checkpoints,  // checkpoint.list
                                const std::string& head);
// The fixed shape of `specula log --json`: [{checkpoint, parent, command,
// created, layers, has_process_image}].
Json CheckpointLogJson(const std::vector<api::Checkpoint>& checkpoints);
// `specula run`'s report of a lossy effect on stderr, and inspect's line.
std::string LossyEffectLine(const api::LossyEffect& effect);

}  // namespace specula::cli
