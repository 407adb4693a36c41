// What a model-backed speculator sends: the task, the history and the last
// outputs within a token budget, and the reply format; and the incremental
// parser of that reply, so that each candidate is usable as soon as its
// JSON object is complete in a streamed reply.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "speculators/history.h"
#include "speculators/speculator.h"

namespace specula::speculators {

struct PromptOptions {
  size_t token_budget = 3000;         // for system + user text (estimated: bytes / 4)
  size_t outputs_with_text = 3;       // the last N steps carry their output
  size_t max_output_bytes = 1500;     // per step (head and tail kept)
  size_t max_command_bytes = 400;     // per older command
  double task_share = 0.25;           // of the budget, at most
};

struct Prompt {
  std::string system;
  std::string user;
  size_t estimated_tokens = 0;
  size_t steps_shown = 0;    // steps whose command is in the prompt
  size_t steps_omitted = 0;  // older steps left out for the budget
};

size_t EstimateTokens(std::string_view text);

// `hints`: candidates of a fast speculator, offered to the model as
// suggestions (may be empty).
Prompt BuildSpeculatorPrompt(const History& history, int k, const PromptOptions& options,
                             const std::vector<Candidate>& hints = {});

// Extracts {"command": "...", "confidence": p} objects from a reply of the
// form {"candidates":[{...},{...}]} (or one object per line, or inside a
// code fence) as the text grows. Feed() returns the candidates completed by
// the new text.
class CandidateStreamParser {
 public:
  explicit CandidateStreamParser(std::string source) : source_(std::move(source)) {}
  std::vector<Candidate> Feed(std::string_view text);
  const std::vector<Candidate>& all() const { return all_; }

 private:
  std::string source_;
  std::string buf_;       // the object being read (from its '{')
  int depth_ = 0;         // brace depth of the whole text
  int object_depth_ = -1;  // depth at which the current candidate object opened
  bool in_string_ = false, escape_ = false;
  std::vector<Candidate> all_;
};

}  // namespace specula::speculators
