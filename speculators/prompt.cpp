#include "speculators/prompt.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace specula::speculators {
namespace {

std::string Cut(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t head = max * 2 / 3, tail = max - head;
  return std::string(s.substr(0, head)) + "\n[... " + std::to_string(s.size() - max) + " bytes omitted ...]\n" +
         std::string(s.substr(s.size() - tail));
}

}  // namespace

size_t EstimateTokens(std::string_view text) { return (text.size() + 3) / 4; }

Prompt BuildSpeculatorPrompt(const History& h, int k, const PromptOptions& o, const std::vector<Candidate>& hints) {
  Prompt p;
  p.system =
      "You predict the next shell command that an AI agent will run in a Linux terminal. You see the agent's "
      "task and the commands it ran so far with their results. Reply with a JSON object "
      "{\"candidates\":[{\"command\":\"...\",\"confidence\":0.0}]} listing up to " +
      std::to_string(std::max(k, 1)) +
      " distinct commands, most likely first. Each command must be the exact string the agent will type "
      "(same quoting, same flags, same paths); confidence is your probability (0..1) that it is exactly "
      "the next command. Agents repeat their own habits: reuse their spelling of paths and options. "
      "Reply with the JSON object only.";
  size_t budget_bytes = o.token_budget * 4;
  size_t used = p.system.size();
  std::string task = h.task.empty() ? "(not given)" : h.task;
  size_t task_max = static_cast<size_t>(static_cast<double>(budget_bytes) * o.task_share);
  std::string head = "Task:\n" + Cut(task, std::max<size_t>(task_max, 200)) + "\n\n";
  std::string tail;
  if (!hints.empty()) {
    tail += "A fast rule-based guesser suggests (it is often wrong):\n";
    for (const auto& c : hints) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", c.confidence);
      tail += "- " + Cut(c.command, 300) + " (" + buf + ")\n";
    }
    tail += "\n";
  }
  tail += "What is the agent's next command? Reply with the JSON object only.";
  used += head.size() + tail.size();
  // Steps from the newest backwards until the budget is used.
  std::vector<std::string> blocks;
  size_t n = h.steps.size();
  for (size_t back = 0; back < n; ++back) {
    size_t i = n - 1 - back;
    const Step& s = h.steps[i];
    std::string b = "$ " + Cut(s.command, back < o.outputs_with_text ? o.max_command_bytes * 4 : o.max_command_bytes) + "\n";
    if (back < o.outputs_with_text && s.has_outcome) {
      b += "[exit " + std::to_string(s.exit_code) + "]\n";
      std::string out = s.stdout_text;
      if (!s.stderr_text.empty()) out += (out.empty() ? "" : "\n") + std::string("[stderr]\n") + s.stderr_text;
      if (!out.empty()) b += Cut(out, o.max_output_bytes) + "\n";
    }
    if (used + b.size() + 64 > budget_bytes && !blocks.empty()) break;
    used += b.size();
    blocks.push_back(std::move(b));
  }
  p.steps_shown = blocks.size();
  p.steps_omitted = n - blocks.size();
  std::string hist = "Commands so far, oldest first";
  if (p.steps_omitted) hist += " (" + std::to_string(p.steps_omitted) + " earlier commands omitted)";
  hist += n ? ":\n" : ": none yet.\n";
  for (size_t i = blocks.size(); i-- > 0;) hist += blocks[i];
  p.user = head + hist + "\n" + tail;
  p.estimated_tokens = EstimateTokens(p.system) + EstimateTokens(p.user);
  return p;
}

std::vector<Candidate> CandidateStreamParser::Feed(std::string_view text) {
  std::vector<Candidate> out;
  for (char c : text) {
    if (buf_.size() > (1u << 20)) break;  // a runaway reply
    if (object_depth_ >= 0) buf_.push_back(c);
    if (in_string_) {
      if (escape_) escape_ = false;
      else if (c == '\\') escape_ = true;
      else if (c == '"') in_string_ = false;
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{') {
      ++depth_;
      // A candidate object is the innermost object: (re)start capturing at
      // every '{'; an enclosing {"candidates":...} is never parsed whole.
      object_depth_ = depth_;
      buf_ = "{";
    } else if (c == '}') {
      if (object_depth_ == depth_) {
        auto j = nlohmann::json::parse(buf_, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("command") && j["command"].is_string()) {
          Candidate cand;
          cand.command = j["command"].get<std::string>();
          if (j.contains("confidence") && j["confidence"].is_number()) cand.confidence = j["confidence"].get<double>();
          cand.source = source_;
          cand.confidence = std::clamp(cand.confidence, 0.0, 1.0);
          if (!(cand.confidence == cand.confidence)) cand.confidence = 0;
          all_.push_back(cand);
          out.push_back(std::move(cand));
        }
        object_depth_ = -1;
        buf_.clear();
      }
      if (depth_ > 0) --depth_;
    }
  }
  return out;
}

}  // namespace specula::speculators
