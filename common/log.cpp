#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace specula {

void InitLogging(std::string_view level, std::string_view name) {
  auto logger = spdlog::stderr_color_mt(std::string(name));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  spdlog::set_default_logger(logger);
}

}  // namespace specula
