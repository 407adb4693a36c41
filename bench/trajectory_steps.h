// The "step" commands of an example trajectory (agents/trajectories/*.jsonl,
// one JSON object per line; docs/trajectories.md), for the benches that
// replay them without the agents engine.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace specula::bench {

inline std::vector<std::string> TrajectoryCommands(const std::filesystem::path& file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("type", "") == "step" && j.contains("command") && j["command"].is_string()) {
      out.push_back(j["command"].get<std::string>());
    }
  }
  return out;
}

}  // namespace specula::bench
