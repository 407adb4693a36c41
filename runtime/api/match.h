// The commit match rule of DESIGN.md ("The contract" 2): two commands are the
// same action when they are byte-equal after trimming surrounding whitespace
// and applying the policy's normalisations ("collapse_whitespace",
// "strip_trailing_semicolon"). Part of the contract, so that the core (which
// decides hits) and an agent (which predicts them) apply the same rule.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace specula::api {

// Fails (invalid_argument) on a normalisation this build does not know, so a
// policy typo never silently changes what matches.
Status ValidateNormalisations(const std::vector<std::string>& normalisations);

// The canonical form both sides are compared in.
std::string NormaliseCommand(std::string_view command, const std::vector<std::string>& normalisations);

// The default rule, with no normalisations: ASCII whitespace trimmed at both ends.
inline std::string TrimCommand(std::string_view command) { return NormaliseCommand(command, {}); }

}  // namespace specula::api
