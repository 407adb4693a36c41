// The built-in speculator's view of a session: what the next command can
// refer to (slots: the files just written (W) or edited (E), the files the
// session works on most (F), the paths the last output listed (O),
// the operands of recent commands, a missing module, numbers for paging,
// strings quoted in the task) and the context it is predicted in (keys of
// increasing specificity). Templates are commands with slot references in
// place of those values: "python {W1}", "cat {O2}", "pip install {M}",
// "sed -n '{B+1},{2B-A+1}p' {C1}". Learning counts templates per context;
// proposing instantiates them with the session's current slot values.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "speculators/features.h"
#include "speculators/history.h"

namespace specula::speculators {

// Slot references inside a template: kSlotOpen NAME kSlotClose. Control
// characters never appear in the commands we template (they are checked).
inline constexpr char kSlotOpen = '\x01';
inline constexpr char kSlotClose = '\x02';

struct Slot {
  std::string name;   // "W1", "O3.b", "B+1", ...
  std::string value;  // what it stands for now
  bool numeric = false;
};
using Slots = std::vector<Slot>;

inline constexpr size_t kLevels = 5;
// Context keys, general to specific: "*", the previous program, its kind and
// status, that plus the kind before it, the previous command's template and
// status. "" = no such context (the level is skipped).
using ContextKeys = std::array<std::string, kLevels>;

// Longest command (in bytes) that is ever learned as a template.
inline constexpr size_t kMaxTemplateBytes = 200;

// Templates of `command` given `slots`: the literal command, the maximal
// abstraction (every slot value found, longest first) and one abstraction
// per single slot, distinct, at most `max_variants`. Empty for commands that
// cannot be templated (here-documents, several lines, too long).
std::vector<std::string> Abstract(std::string_view command, const Slots& slots, size_t max_variants = 10);
// The command a template stands for now, or nullopt if a slot is missing.
std::optional<std::string> Instantiate(std::string_view tmpl, const Slots& slots);
// The slot names a template refers to.
std::vector<std::string> TemplateSlotNames(std::string_view tmpl);
// "{NAME}" for every slot reference (for people and the model file).
std::string PrintableTemplate(std::string_view tmpl);
bool HasSlots(std::string_view tmpl);

class SessionState {
 public:
  explicit SessionState(std::string_view task = {});
  // Adds a committed step.
  void Push(const Step& step);
  // The same with the command already analysed (AnalyzeCommand(step.command)).
  void Push(const Step& step, CommandInfo command);
  size_t size() const { return steps_; }

  // For predicting the next command:
  const Slots& slots() const { return slots_; }
  const ContextKeys& keys() const { return keys_; }
  // The slot value named `name`, or nullptr.
  const Slot* Find(std::string_view name) const;
  // The last pushed command's analysis (nullptr before the first step).
  const CommandInfo* last_command() const { return steps_ ? &last_cmd_ : nullptr; }
  const OutputInfo* last_output() const { return steps_ ? &last_out_ : nullptr; }

 private:
  void Rebuild();

  size_t steps_ = 0;
  std::vector<std::string> task_quotes_;
  std::vector<std::string> written_;              // new content (here-documents, redirects), most recent last
  std::vector<std::string> edited_;               // changed in place or copied over, most recent last
  std::vector<std::vector<std::string>> recent_;  // paths of the last commands, most recent last
  std::vector<std::pair<std::string, double>> focus_;  // paths by decayed mention count
  std::vector<std::string> quoted_;                    // quoted non-path arguments of recent commands, most recent first
  std::string cd_dir_;
  CommandInfo last_cmd_;
  OutputInfo last_out_;
  std::string prev_kind_;      // kind of the command before the last
  std::string last_template_;  // maximal abstraction of the last command (in its own context)
  Slots slots_;
  ContextKeys keys_;
};

}  // namespace specula::speculators
