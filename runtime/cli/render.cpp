#include "runtime/cli/render.h"

#include <cstdio>
#include <sstream>

#include "runtime/cli/checkpoint_graph.h"

namespace specula::cli {
namespace {

std::string ExitText(const std::optional<api::BranchResult>& result) {
  if (!result) return "-";
  if (result->signal != 0) return "sig " + std::to_string(result->signal);
  return std::to_string(result->exit_code);
}

int64_t Ms(double ms) { return static_cast<int64_t>(ms); }

}  // namespace

std::string LossyEffectLine(const api::LossyEffect& e) { return "[" + e.tag + "] " + e.kind + " " + e.path; }

std::string RenderSessionTable(const std::vector<api::Session>& sessions) {
  if (sessions.empty()) return "no sessions\n";
  Table t({"SESSION", "NAME", "BASE", "TARGET", "HEAD", "CHECKPOINTS", "BRANCHES", "CREATED"});
  for (const auto& s : sessions) {
    t.Row({s.session, s.name, s.base, s.target, s.head, std::to_string(s.checkpoints),
           std::to_string(s.live_branches), s.created});
  }
  return t.Render();
}

std::string RenderSession(const api::Session& s) {
  std::ostringstream o;
  o << "session      " << s.session << "\n"
    << "name         " << s.name << "\n"
    << "base         " << s.base << "\n"
    << "target       " << s.target << "\n"
    << "policy       " << s.policy << "\n"
    << "head         " << s.head << "\n"
    << "checkpoints  " << s.checkpoints << "\n"
    << "branches     " << s.live_branches << " live\n"
    << "created      " << s.created << "\n";
  if (const auto& sp = s.speculation) {
    o << "speculation  " << sp->config.speculator << ", k " << sp->config.k << ", launch " << sp->config.launch;
    if (sp->config.min_p > 0) o << ", min_p " << sp->config.min_p;
    o << "\n             " << sp->proposals << " rounds, " << sp->launched << " branches, " << sp->hits
      << " hits; cost " << sp->cost_ms << " ms vs saving " << sp->saving_ms << " ms\n";
    // round_head: the head whose proposal round is over (docs/api.md); a
    // script waits for it to equal the head before it times a commit.
    if (sp->round_head.empty()) {
      o << "             no round finished yet\n";
    } else if (sp->round_head == s.head) {
      o << "             round for the head done\n";
    } else {
      o << "             round for the head running (last done for " << sp->round_head << ")\n";
    }
    if (!sp->last_error.empty()) o << "             last error: " << sp->last_error << "\n";
  }
  return o.str();
}

namespace {
// Who launched a branch: "client", or the speculator with its confidence.
std::string OriginText(const std::optional<api::BranchOrigin>& origin) {
  if (!origin) return "client";
  char p[16];
  std::snprintf(p, sizeof(p), "%.2f", origin->confidence);
  return origin->source + " p=" + p;
}
}  // namespace

std::string RenderBranchTable(const std::vector<api::BranchSummary>& branches) {
  if (branches.empty()) return "no branches\n";
  Table t({"BRANCH", "STATE", "EXIT", "DURATION", "FROM", "LAUNCHED BY", "COMMAND"});
  for (const auto& b : branches) {
    t.Row({b.branch, b.state, ExitText(b.result), b.result ? FormatDuration(Ms(b.result->duration_ms)) : "-",
           b.parent_checkpoint, OriginText(b.origin), OneLine(b.command, 60)});
  }
  return t.Render();
}

std::string RenderBranch(const api::BranchDetail& b) {
  std::ostringstream o;
  o << "branch       " << b.branch << "\n"
    << "session      " << b.session << "\n"
    << "state        " << b.state << "\n"
    << "command      " << b.command << "\n"
    << "from         " << b.parent_checkpoint << "\n"
    << "created      " << b.created << "\n"
    << "upper size   " << FormatBytes(b.upper_bytes) << "\n"
    << "launched by  " << OriginText(b.origin) << "\n";
  if (b.origin && !b.origin->rule.empty()) o << "because      " << b.origin->rule << "\n";
  // Older daemons send no reason; live branches have none yet.
  if (!b.reason.empty()) o << "ended        " << b.reason << "\n";
  if (const auto& r = b.result) {
    o << "result       exit " << ExitText(r) << " in " << FormatDuration(Ms(r->duration_ms)) << ", stdout "
      << FormatBytes(r->stdout_bytes) << ", stderr " << FormatBytes(r->stderr_bytes)
      << (r->truncated ? " (truncated)" : "") << "\n";
  } else {
    o << "result       (not finished)\n";
  }
  std::string flags;
  for (const auto& f : b.flags) flags += (flags.empty() ? "" : ", ") + f;
  if (!flags.empty()) o << "flags        " << flags << "\n";
  auto section = [&](std::string_view title, const auto& items, auto&& line) {
    o << "\n" << title << " (" << items.size() << ")\n";
    for (const auto& item : items) o << "  " << line(item) << "\n";
  };
  section("effect journal", b.journal, [](const api::JournalEntry& e) {
    std::string s = e.kind + " " + e.path;
    if (!e.detail.empty()) s += " -> " + e.detail;
    if (!e.tag.empty()) s += "  [lossy: " + e.tag + "]";
    return s;
  });
  auto syscall_line = [](const api::SyscallEvent& e) {
    std::string s = e.syscall;
    if (!e.detail.empty()) s += "(" + e.detail + ")";
    return s + "  " + e.state;
  };
  section("deferred syscalls", b.deferred, syscall_line);
  section("denied syscalls", b.denied, syscall_line);
  section("lossy effects", b.lossy_effects, [](const api::LossyEffect& e) {
    return LossyEffectLine(e) + (e.compensated ? " (pre-image kept)" : "");
  });
  return o.str();
}

std::string RenderDiff(const api::BranchDiff& d) {
  if (d.files.empty()) return "no changes\n";
  std::ostringstream o;
  for (const auto& f : d.files) {
    char mark = f.change == "added" ? 'A' : f.change == "deleted" ? 'D' : 'M';
    o << mark << "  " << f.path;
    if (f.type != "file" && !f.type.empty()) o << "  (" << f.type << ")";
    o << "\n";
  }
  for (const auto& f : d.files) {
    if (f.diff.empty()) continue;
    o << "\n" << f.diff;
    if (f.diff.back() != '\n') o << "\n";
  }
  return o.str();
}

Json CheckpointLogJson(const std::vector<api::Checkpoint>& checkpoints) {
  Json out = Json::array();
  for (const auto& c : checkpoints) {
    out.push_back({{"checkpoint", c.checkpoint}, {"parent", c.parent.empty() ? Json(nullptr) : Json(c.parent)},
                   {"command", c.command}, {"created", c.created}, {"layers", c.layers},
                   {"has_process_image", c.has_process_image}});
  }
  return out;
}

std::string RenderCheckpointLog(const std::vector<api::Checkpoint>& checkpoints, const std::string& head) {
  if (checkpoints.empty()) return "no checkpoints\n";
  std::vector<GraphNode> nodes;
  for (const auto& c : checkpoints) {
    std::string text;
    if (c.checkpoint == head) text += "(head) ";
    text += c.command.empty() ? "(root)" : OneLine(c.command, 60);
    text += "  " + c.created;
    text += "  " + std::to_string(c.layers) + " layers";
    if (c.has_process_image) text += " +processes";
    nodes.push_back({c.checkpoint, c.parent, text});
  }
  return RenderCheckpointGraph(nodes);
}

}  // namespace specula::cli
