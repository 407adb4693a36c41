// ShellState's stored form: a header line, then length-prefixed fields
// ("<key> <byte count>\n<bytes>\n"), so any byte sequence bash produces
// round-trips exactly and a truncated or edited record is detected.
#include <charconv>
#include <regex>
#include <sstream>

#include "sandbox/sandbox.h"

namespace specula::sandbox {
namespace {

constexpr std::string_view kHeader = "specula-shell-state v1\n";
constexpr size_t kMaxField = 64u << 20;

std::string UmaskText(uint32_t umask) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", umask);
  return buf;
}

void PutField(std::string& out, std::string_view key, const std::string& value) {
  out.append(key);
  out.push_back(' ');
  out.append(std::to_string(value.size()));
  out.push_back('\n');
  out.append(value);
  out.push_back('\n');
}

}  // namespace

std::string ShellState::Serialize() const {
  std::string out(kHeader);
  PutField(out, "cwd", cwd);
  PutField(out, "umask", UmaskText(umask));
  PutField(out, "env", env);
  PutField(out, "variables", variables);
  PutField(out, "functions", functions);
  PutField(out, "aliases", aliases);
  PutField(out, "options", options);
  return out;
}

Result<ShellState> ShellState::Parse(const std::string& text) {
  auto bad = [](const std::string& why) {
    return Error(Code::kDataLoss, "shell state: " + why);
  };
  if (text.compare(0, kHeader.size(), kHeader) != 0) return bad("missing header");
  ShellState s;
  std::string* targets[] = {&s.cwd, &s.env, &s.variables, &s.functions, &s.aliases, &s.options};
  const char* names[] = {"cwd", "env", "variables", "functions", "aliases", "options"};
  std::string umask_text;
  bool seen[7] = {};
  size_t pos = kHeader.size();
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) return bad("truncated field header");
    std::string line = text.substr(pos, nl - pos);
    size_t sp = line.find(' ');
    if (sp == std::string::npos) return bad("malformed field header '" + line.substr(0, 40) + "'");
    std::string key = line.substr(0, sp);
    size_t len = 0;
    const char* first = line.data() + sp + 1;
    const char* last = line.data() + line.size();
    auto [ptr, ec] = std::from_chars(first, last, len);
    if (ec != std::errc() || ptr != last || first == last || len > kMaxField) {
      return bad("bad length for field '" + key + "'");
    }
    pos = nl + 1;
    if (len > text.size() - pos || text.size() - pos - len < 1 || text[pos + len] != '\n') {
      return bad("field '" + key + "' is truncated");
    }
    std::string value = text.substr(pos, len);
    pos += len + 1;
    int idx = -1;
    if (key == "umask") {
      idx = 6;
      umask_text = value;
    } else {
      for (int i = 0; i < 6; ++i) {
        if (key == names[i]) {
          idx = i;
          *targets[i] = std::move(value);
        }
      }
    }
    if (idx < 0) return bad("unknown field '" + key + "'");
    if (seen[idx]) return bad("field '" + key + "' appears twice");
    seen[idx] = true;
  }
  for (bool b : seen) {
    if (!b) return bad("missing field");
  }
  uint32_t umask = 0;
  auto [ptr, ec] = std::from_chars(umask_text.data(), umask_text.data() + umask_text.size(), umask, 8);
  if (ec != std::errc() || ptr != umask_text.data() + umask_text.size() || umask_text.empty()) {
    return bad("bad umask '" + umask_text + "'");
  }
  s.umask = umask;
  Status st = s.Validate();
  if (!st.ok()) return Error(Code::kDataLoss, std::move(st).error().message());
  return s;
}

Status ShellState::Validate() const {
  auto bad = [](const std::string& why) {
    return Status(Error(Code::kInvalidArgument, "shell state: " + why));
  };
  if (cwd.empty() || cwd.front() != '/') return bad("cwd '" + cwd + "' is not absolute");
  if (umask > 0777) return bad("umask " + UmaskText(umask) + " out of range");
  for (const std::string* f : {&cwd, &env, &variables, &functions, &aliases, &options}) {
    if (f->find('\0') != std::string::npos) return bad("NUL byte in a field");
  }
  static const std::regex kOption(R"(^(set [-+]o [a-z-]+|shopt -[su] [a-z0-9_]+)$)");
  std::stringstream ss(options);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty()) continue;
    if (!std::regex_match(line, kOption)) return bad("unexpected option line '" + line + "'");
  }
  return Status::Ok();
}

}  // namespace specula::sandbox
