#include "agents/trajectory.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#ifndef SPECULA_TRAJECTORY_DIR
#define SPECULA_TRAJECTORY_DIR "agents/trajectories"
#endif

namespace specula::agents {
namespace {

using Json = nlohmann::json;
constexpr auto kStepTimeout = std::chrono::milliseconds(120000);

Result<Trajectory> ParseLines(std::string_view text) {
  Trajectory t;
  bool have_header = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = "line " + std::to_string(line_no);
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Error(Code::kInvalidArgument, where + ": not a JSON object");
    }
    std::string type = j.value("type", "");
    if (type == "trajectory") {
      if (have_header) return Error(Code::kInvalidArgument, where + ": second header");
      have_header = true;
      t.name = j.value("name", "");
      t.category = j.value("category", "");
      t.task = j.value("task", "");
      if (t.name.empty() || t.name.find('/') != std::string::npos) {
        return Error(Code::kInvalidArgument, where + ": header needs a name without '/'");
      }
    } else if (type == "step") {
      if (!have_header) return Error(Code::kInvalidArgument, where + ": step before header");
      TrajectoryStep s;
      s.command = j.value("command", "");
      s.think_ms = j.value("think_ms", 0.0);
      if (s.command.empty()) return Error(Code::kInvalidArgument, where + ": empty command");
      if (!(s.think_ms >= 0)) return Error(Code::kInvalidArgument, where + ": negative think_ms");
      if (j.contains("exit_code")) {
        ActionOutcome o;
        o.exit_code = j.value("exit_code", -1);
        o.stdout_text = j.value("stdout", "");
        o.stderr_text = j.value("stderr", "");
        s.recorded = o;
      }
      t.steps.push_back(std::move(s));
    } else {
      return Error(Code::kInvalidArgument, where + ": unknown type '" + type + "'");
    }
  }
  if (!have_header) return Error(Code::kInvalidArgument, "no header line");
  if (t.steps.empty()) return Error(Code::kInvalidArgument, "no steps");
  return t;
}

}  // namespace

Result<Trajectory> ParseTrajectory(std::string_view jsonl) {
  // nlohmann::json accessors can throw on type mismatches ("think_ms":"x").
  try {
    return ParseLines(jsonl);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("trajectory: ") + e.what());
  }
}

Result<Trajectory> LoadTrajectory(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::FromErrno("open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ParseTrajectory(ss.str());
  t.Context(path);
  return t;
}

std::string SerializeTrajectory(const Trajectory& t) {
  std::string out;
  Json h = {{"type", "trajectory"}, {"name", t.name}, {"category", t.category}, {"task", t.task}};
  out += h.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  for (const auto& s : t.steps) {
    Json j = {{"type", "step"}, {"think_ms", s.think_ms}, {"command", s.command}};
    if (s.recorded) {
      j["exit_code"] = s.recorded->exit_code;
      j["stdout"] = s.recorded->stdout_text;
      j["stderr"] = s.recorded->stderr_text;
    }
    out += j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  }
  return out;
}

Status SaveTrajectory(const Trajectory& t, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error::FromErrno("open " + tmp);
    out << SerializeTrajectory(t);
    if (!out.flush()) return Error::FromErrno("write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(Code::kInternal, "rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

Result<std::vector<Trajectory>> LoadCorpus(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".jsonl") paths.push_back(it->path().string());
  }
  if (ec) return Error(Code::kNotFound, "corpus " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  std::vector<Trajectory> corpus;
  std::set<std::string> names;
  for (const auto& p : paths) {
    SPECULA_ASSIGN_OR_RETURN(Trajectory t, LoadTrajectory(p));
    if (!names.insert(t.name).second) {
      return Error(Code::kInvalidArgument, p + ": duplicate trajectory name " + t.name);
    }
    corpus.push_back(std::move(t));
  }
  if (corpus.empty()) return Error(Code::kNotFound, "corpus " + dir + ": no *.jsonl files");
  return corpus;
}

std::string DefaultCorpusDir() {
  const char* env = std::getenv("SPECULA_TRAJECTORIES");
  return env && *env ? env : SPECULA_TRAJECTORY_DIR;
}

Result<std::vector<std::string>> ReplayAgainst(Trajectory& t, Environment& env, bool record) {
  std::vector<std::string> mismatches;
  for (size_t i = 0; i < t.steps.size(); ++i) {
    auto& s = t.steps[i];
    SPECULA_ASSIGN_OR_RETURN(CommitResult c, env.Commit(s.command, kStepTimeout)
                                                 .Context(t.name + " step " + std::to_string(i)));
    if (record) {
      ActionOutcome o = c.outcome;
      o.duration_ms = 0;
      s.recorded = o;
      continue;
    }
    if (!s.recorded) {
      mismatches.push_back(t.name + " step " + std::to_string(i) + ": not recorded");
    } else if (!s.recorded->SameObservable(c.outcome)) {
      mismatches.push_back(t.name + " step " + std::to_string(i) + " `" + s.command +
                           "`: recorded exit " + std::to_string(s.recorded->exit_code) +
                           " stdout '" + s.recorded->stdout_text + "' stderr '" +
                           s.recorded->stderr_text + "', got exit " +
                           std::to_string(c.outcome.exit_code) + " stdout '" +
                           c.outcome.stdout_text + "' stderr '" + c.outcome.stderr_text + "'");
    }
  }
  return mismatches;
}

}  // namespace specula::agents
