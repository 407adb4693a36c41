// The `specula policy ...` subcommands, as functions the CLI binary calls
// (the CLI owner parses argv; these do the work and print). Return values are
// exit statuses: 0 success, 1 the policy has errors (printed to `err`, or as
// JSON to `out` with json=true).
#pragma once

#include <ostream>
#include <string>

namespace specula::policy {

// `specula policy check FILE [--json]`: loads FILE (and what it extends),
// prints every error as "file:line:col: key: message"; a valid policy gets
// "warning: ..." lines for risky settings (PolicyWarnings, exit still 0) and
// "note: ..." lines. With json, prints {"ok":bool,"errors":[{"file","line",
// "column","key","message"}],"warnings":[..],"notes":[..]} to `out`.
int PolicyCheckCommand(const std::string& file, bool json, std::ostream& out, std::ostream& err);

// `specula policy explain FILE|NAME [--json]`: FILE, or a shipped policy NAME
// ("default", "sysadmin", "kernel-tuning"), in plain words. With json,
// prints {"ok":true,"policy":NAME,"source":PATH,"explain":TEXT} or the
// errors as PolicyCheckCommand does.
int PolicyExplainCommand(const std::string& file_or_name, bool json, std::ostream& out,
                         std::ostream& err);

}  // namespace specula::policy
