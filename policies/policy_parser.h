// Policy files: TOML -> specula::policy::Policy (docs/policy.md documents the
// format key by key). Parsing collects every problem it finds, each with
// file:line:column and the key path, so an operator fixes a file in one go:
//   site.toml:12:9: filesystem.lossy[0].compensation: expected "restore" or "none", got "restor"
// Unknown keys are errors: a typo must never silently weaken a policy.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"

namespace specula::policy {

// One problem in a policy file.
struct Diagnostic {
  std::string file;       // as the file was named (a path, or the source name given)
  uint32_t line = 0;      // 1-based; 0 when the problem has no place (file unreadable)
  uint32_t column = 0;    // 1-based
  std::string key;        // "filesystem.lossy[0].compensation"; empty for syntax errors
  std::string message;    // what was expected and what was found
  // "file:line:column: key: message" (parts that are empty are left out).
  std::string ToString() const;
};

// Every problem found, in the order they appear (file, then line, column).
class PolicyErrors {
 public:
  void Add(Diagnostic d) { items_.push_back(std::move(d)); }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // Stable sort by file, line, column (keeps the order of equal places).
  void Sort();
  // One diagnostic per line.
  std::string ToString() const;

 private:
  std::vector<Diagnostic> items_;
};

// The text of a policy named by `extends`, and the name diagnostics use.
struct PolicySource {
  std::string name;  // a path (canonical, so cycles are detected by name)
  std::string text;
};

// Finds the policy that `extends = "<ref>"` in the file `from` refers to.
using ExtendsResolver =
    std::function<Result<PolicySource>(std::string_view ref, std::string_view from)>;

// `ref` relative to the directory of `from` (if it names a file there), else
// a shipped policy ("default" or "default.toml", see FindShippedPolicy).
ExtendsResolver FileResolver();
// Shipped policies only (for text that has no directory, e.g. over RPC).
ExtendsResolver ShippedResolver();

// Parses and validates a policy text. `source_name` names it in diagnostics
// (and its directory anchors relative `extends`). On failure the Error
// (invalid_argument) lists every diagnostic, and `errors`, if given, receives
// them as data.
Result<Policy> ParsePolicy(std::string_view text, std::string_view source_name,
                           const ExtendsResolver& resolver = FileResolver(),
                           PolicyErrors* errors = nullptr);

// Reads `path` and parses it with FileResolver().
Result<Policy> LoadPolicyFile(const std::string& path, PolicyErrors* errors = nullptr);

// Where shipped policies are looked for, in order: $SPECULA_POLICY_DIR,
// /etc/specula/policies (the Debian package's conffiles, which an operator
// edits: they win over the copies a build carries), the source tree's
// policies/ (compiled in), the installed share directory.
std::vector<std::string> ShippedPolicyDirs();
// The path of shipped policy `name` ("sysadmin" or "sysadmin.toml"), or ""
// when none is found or the name is not a plain file name.
std::string FindShippedPolicy(std::string_view name);

// What a speculative branch may and may not do under `p`, in plain words
// (for `specula policy explain`).
std::string ExplainPolicy(const Policy& p);

// Things about a valid policy an operator should know because they differ
// from what it seems to ask for (`policy check` prints them as notes).
std::vector<std::string> PolicyNotes(const Policy& p);

}  // namespace specula::policy
