#include "policies/policy_cli.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "policies/containment.h"
#include "policies/policy_parser.h"

namespace specula::policy {
namespace {

nlohmann::json ErrorsJson(const PolicyErrors& errors) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Diagnostic& d : errors.items()) {
    arr.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"key", d.key},
                   {"message", d.message}});
  }
  return arr;
}

// Loads a file, collecting diagnostics even for an unreadable file.
Result<Policy> Load(const std::string& file, PolicyErrors& errors) {
  return LoadPolicyFile(file, &errors);
}

void PrintErrors(const PolicyErrors& errors, std::ostream& err) {
  for (const Diagnostic& d : errors.items()) err << d.ToString() << "\n";
  err << errors.size() << (errors.size() == 1 ? " error\n" : " errors\n");
}

// `dump()` throws on invalid UTF-8; replace instead, since file text can be anything.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int PolicyCheckCommand(const std::string& file, bool json, std::ostream& out, std::ostream& err) {
  PolicyErrors errors;
  auto policy = Load(file, errors);
  std::vector<std::string> notes, warnings;
  if (policy.ok()) {
    notes = PolicyNotes(*policy);
    warnings = PolicyWarnings(*policy);
  }
  if (json) {
    out << Dump({{"ok", policy.ok()}, {"errors", ErrorsJson(errors)}, {"warnings", warnings}, {"notes", notes}})
        << "\n";
  } else if (policy.ok()) {
    out << file << ": ok (policy \"" << policy->name << "\")\n";
    for (const std::string& w : warnings) out << "warning: " << w << "\n";
    for (const std::string& n : notes) out << "note: " << n << "\n";
  } else {
    PrintErrors(errors, err);
  }
  return policy.ok() ? 0 : 1;
}

int PolicyExplainCommand(const std::string& file_or_name, bool json, std::ostream& out,
                         std::ostream& err) {
  // An existing file wins over a shipped name of the same spelling.
  std::string path = file_or_name;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    std::string shipped = FindShippedPolicy(file_or_name);
    if (!shipped.empty()) path = shipped;
  }
  PolicyErrors errors;
  auto policy = Load(path, errors);
  if (!policy.ok()) {
    if (json) {
      out << Dump({{"ok", false}, {"errors", ErrorsJson(errors)}}) << "\n";
    } else {
      PrintErrors(errors, err);
    }
    return 1;
  }
  std::string text = ExplainPolicy(*policy);
  if (json) {
    out << Dump({{"ok", true}, {"policy", policy->name}, {"source", policy->source}, {"explain", text}})
        << "\n";
  } else {
    out << text;
  }
  return 0;
}

}  // namespace specula::policy
