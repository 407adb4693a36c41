// The input rules of docs/api.md "Conventions", checked where a request
// enters the daemon (DecodeParams) and available to any client that wants
// to refuse a bad value before sending it.
#pragma once

#include <string_view>

#include "common/error.h"

namespace specula::api {

// A session/branch/checkpoint id or a name: non-empty, at most 256 bytes, no
// '/', NUL or other control characters, not "." or "..".
Status ValidateId(std::string_view what, std::string_view id);

// An action's command: not blank, at most 1 MiB, no NUL byte (bash would
// silently cut the command there). The one definition of the rule: the
// daemon's decoder applies it to every request, the core to every call.
Status ValidateCommand(std::string_view command);

// An absolute path of at most 4096 bytes without NUL.
Status ValidateAbsolutePath(std::string_view what, std::string_view path);

}  // namespace specula::api
