#include "runtime/cli/render.h"

#include <sstream>

#include "runtime/cli/checkpoint_graph.h"

namespace specula::cli {
namespace {

std::string ExitText(const Json& result) {
  if (!result.is_object()) return "-";
  if (int64_t sig = Int(result, "signal"); sig != 0) return "sig " + std::to_string(sig);
  return std::to_string(Int(result, "exit_code"));
}

// A copy: simpler than returning into the document, and replies are small.
Json Array(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return Json::array();
  Json v = obj.value(std::string(key), Json::array());
  return v.is_array() ? v : Json::array();
}

}  // namespace

std::string RenderSessionTable(const Json& sessions) {
  if (!sessions.is_array() || sessions.empty()) return "no sessions\n";
  Table t({"SESSION", "NAME", "BASE", "TARGET", "HEAD", "CHECKPOINTS", "BRANCHES", "CREATED"});
  for (const auto& s : sessions) {
    t.Row({Str(s, "session"), Str(s, "name"), Str(s, "base"), Str(s, "target"), Str(s, "head"),
           std::to_string(Int(s, "checkpoints")), std::to_string(Int(s, "live_branches")), Str(s, "created")});
  }
  return t.Render();
}

std::string RenderSession(const Json& s) {
  std::ostringstream o;
  o << "session      " << Str(s, "session") << "\n"
    << "name         " << Str(s, "name") << "\n"
    << "base         " << Str(s, "base") << "\n"
    << "target       " << Str(s, "target") << "\n"
    << "policy       " << Str(s, "policy") << "\n"
    << "head         " << Str(s, "head") << "\n"
    << "checkpoints  " << Int(s, "checkpoints") << "\n"
    << "branches     " << Int(s, "live_branches") << " live\n"
    << "created      " << Str(s, "created") << "\n";
  return o.str();
}

std::string RenderBranchTable(const Json& branches) {
  if (!branches.is_array() || branches.empty()) return "no branches\n";
  Table t({"BRANCH", "STATE", "EXIT", "DURATION", "FROM", "COMMAND"});
  for (const auto& b : branches) {
    const Json& r = b.contains("result") ? b["result"] : Json();
    t.Row({Str(b, "branch"), Str(b, "state"), ExitText(r),
           r.is_object() ? FormatDuration(Int(r, "duration_ms")) : "-", Str(b, "parent_checkpoint"),
           OneLine(Str(b, "command"), 60)});
  }
  return t.Render();
}

std::string RenderBranch(const Json& b) {
  std::ostringstream o;
  o << "branch       " << Str(b, "branch") << "\n"
    << "session      " << Str(b, "session") << "\n"
    << "state        " << Str(b, "state") << "\n"
    << "command      " << Str(b, "command") << "\n"
    << "from         " << Str(b, "parent_checkpoint") << "\n"
    << "created      " << Str(b, "created") << "\n"
    << "upper size   " << FormatBytes(static_cast<uint64_t>(Int(b, "upper_bytes"))) << "\n";
  // Older daemons send no reason; live branches have none yet.
  if (!Str(b, "reason").empty()) o << "ended        " << Str(b, "reason") << "\n";
  if (b.contains("result") && b["result"].is_object()) {
    const Json& r = b["result"];
    o << "result       exit " << ExitText(r) << " in " << FormatDuration(Int(r, "duration_ms")) << ", stdout "
      << FormatBytes(static_cast<uint64_t>(Int(r, "stdout_bytes"))) << ", stderr "
      << FormatBytes(static_cast<uint64_t>(Int(r, "stderr_bytes")))
      << (Bool(r, "truncated") ? " (truncated)" : "") << "\n";
  } else {
    o << "result       (not finished)\n";
  }
  std::string flags;
  for (const auto& f : Array(b, "flags")) flags += (flags.empty() ? "" : ", ") + (f.is_string() ? f.get<std::string>() : f.dump());
  if (!flags.empty()) o << "flags        " << flags << "\n";
  auto section = [&](std::string_view title, const Json& items, auto&& line) {
    o << "\n" << title << " (" << items.size() << ")\n";
    for (const auto& item : items) o << "  " << line(item) << "\n";
  };
  section("effect journal", Array(b, "journal"), [](const Json& e) {
    std::string s = Str(e, "kind") + " " + Str(e, "path");
    if (!Str(e, "detail").empty()) s += " -> " + Str(e, "detail");
    if (!Str(e, "tag").empty()) s += "  [lossy: " + Str(e, "tag") + "]";
    return s;
  });
  auto syscall_line = [](const Json& e) {
    std::string s = Str(e, "syscall");
    if (!Str(e, "detail").empty()) s += "(" + Str(e, "detail") + ")";
    return s + "  " + Str(e, "state");
  };
  section("deferred syscalls", Array(b, "deferred"), syscall_line);
  section("denied syscalls", Array(b, "denied"), syscall_line);
  section("lossy effects", Array(b, "lossy_effects"), [](const Json& e) {
    return "[" + Str(e, "tag") + "] " + Str(e, "kind") + " " + Str(e, "path") +
           (Bool(e, "compensated") ? " (pre-image kept)" : "");
  });
  return o.str();
}

std::string RenderDiff(const Json& d) {
  const Json& files = Array(d, "files");
  if (files.empty()) return "no changes\n";
  std::ostringstream o;
  for (const auto& f : files) {
    std::string change = Str(f, "change");
    char mark = change == "added" ? 'A' : change == "deleted" ? 'D' : 'M';
    o << mark << "  " << Str(f, "path");
    if (Str(f, "type") != "file" && !Str(f, "type").empty()) o << "  (" << Str(f, "type") << ")";
    o << "\n";
  }
  for (const auto& f : files) {
    std::string diff = Str(f, "diff");
    if (diff.empty()) continue;
    o << "\n" << diff;
    if (diff.back() != '\n') o << "\n";
  }
  return o.str();
}

Json CheckpointLogJson(const Json& checkpoints) {
  Json out = Json::array();
  if (!checkpoints.is_array()) return out;
  for (const auto& c : checkpoints) {
    out.push_back({{"checkpoint", Str(c, "checkpoint")},
                   {"parent", Str(c, "parent").empty() ? Json(nullptr) : Json(Str(c, "parent"))},
                   {"command", Str(c, "command")}, {"created", Str(c, "created")},
                   {"layers", Int(c, "layers")}, {"has_process_image", Bool(c, "has_process_image")}});
  }
  return out;
}

std::string RenderCheckpointLog(const Json& checkpoints, const std::string& head) {
  if (!checkpoints.is_array() || checkpoints.empty()) return "no checkpoints\n";
  std::vector<GraphNode> nodes;
  for (const auto& c : checkpoints) {
    std::string id = Str(c, "checkpoint");
    std::string text;
    if (id == head) text += "(head) ";
    text += Str(c, "command").empty() ? "(root)" : OneLine(Str(c, "command"), 60);
    text += "  " + Str(c, "created");
    text += "  " + std::to_string(Int(c, "layers")) + " layers";
    if (Bool(c, "has_process_image")) text += " +processes";
    nodes.push_back({id, Str(c, "parent"), text});
  }
  return RenderCheckpointGraph(nodes);
}

}  // namespace specula::cli
