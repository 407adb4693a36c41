#include "runtime/api/match.h"

namespace specula::api {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpace(s[b])) ++b;
  while (e > b && IsSpace(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

Status ValidateNormalisations(const std::vector<std::string>& normalisations) {
  for (const auto& n : normalisations) {
    if (n != "collapse_whitespace" && n != "strip_trailing_semicolon") {
      return Error(Code::kInvalidArgument, "unknown match normalisation '" + n + "'");
    }
  }
  return Status::Ok();
}

std::string NormaliseCommand(std::string_view command, const std::vector<std::string>& normalisations) {
  std::string s = Trim(command);
  // Applied in the policy's order; each step re-trims so the result is the
  // same whichever order a policy lists them in.
  for (const auto& n : normalisations) {
    if (n == "collapse_whitespace") {
      // Whitespace runs become one space. Quoting is not parsed: a command
      // differing only in whitespace inside quotes also matches; policies
      // that care simply do not enable this.
      std::string out;
      bool in_space = false;
      for (char c : s) {
        if (IsSpace(c)) {
          if (!in_space) out += ' ';
          in_space = true;
        } else {
          out += c;
          in_space = false;
        }
      }
      s = Trim(out);
    } else if (n == "strip_trailing_semicolon") {
      while (!s.empty() && s.back() == ';') s = Trim(std::string_view(s).substr(0, s.size() - 1));
    }
  }
  return s;
}

}  // namespace specula::api
