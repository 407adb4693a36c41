// Logging: spdlog everywhere. Binaries call InitLogging once; libraries log
// through spdlog's default logger and never print to stdout themselves
// (stdout belongs to the CLI's output and to actions' captured output).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace specula {

// level: trace|debug|info|warn|error|off. Logs go to stderr.
void InitLogging(std::string_view level, std::string_view name = "specula");

}  // namespace specula
