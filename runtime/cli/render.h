// Text renderings of daemon replies for people (the --json output is the
// reply itself). Each takes the JSON result of one method (docs/api.md).
#pragma once

#include <string>

#include "runtime/cli/output.h"

namespace specula::cli {

std::string RenderSessionTable(const Json& sessions);   // session.list
std::string RenderSession(const Json& session);         // session.show
std::string RenderBranchTable(const Json& branches);    // branch.list
std::string RenderBranch(const Json& branch);           // branch.show
std::string RenderDiff(const Json& diff);               // branch.diff
std::string RenderCheckpointLog(const Json& checkpoints, const std::string& head);  // checkpoint.list
// The fixed shape of `specula log --json`: [{checkpoint, parent, command,
// created, layers, has_process_image}].
Json CheckpointLogJson(const Json& checkpoints);

}  // namespace specula::cli
