#include "sandbox/action_script.h"

#include <charconv>
#include <set>
#include <sstream>
#include <vector>

namespace specula::sandbox {
namespace {

// Variables bash manages itself (read-only, dynamic or per-process): they
// are not part of the user's state and some cannot be re-assigned.
bool IsSpecialVariable(const std::string& name) {
  static const std::set<std::string> kNames = {
      "BASH", "BASHOPTS", "BASHPID", "COLUMNS", "COMP_WORDBREAKS", "DIRSTACK", "EPOCHREALTIME",
      "EPOCHSECONDS", "EUID", "FUNCNAME", "GROUPS", "HISTCMD", "HOSTNAME", "HOSTTYPE", "LINENO",
      "LINES", "MACHTYPE", "OPTIND", "OSTYPE", "PIPESTATUS", "PPID", "PWD", "RANDOM", "SECONDS",
      "SHELLOPTS", "SHLVL", "SRANDOM", "UID", "_"};
  return kNames.count(name) != 0 || name.rfind("BASH_", 0) == 0 || name.rfind("__specula", 0) == 0;
}

std::string Marker(const std::string& token, const char* section) {
  return "@@specula:" + token + ":" + section;
}

// Only builtins, no subshell or pipe: the capture costs no fork. The shell
// is exiting, so changing its options after printing them is harmless.
std::string CaptureProgram(const std::string& state_path, const std::string& token) {
  auto mark = [&](const char* s) { return "\\builtin printf '%s\\n' " + ShellQuote(Marker(token, s)); };
  std::ostringstream c;
  c << "{ " << mark("options") << "; \\builtin set +o; \\builtin shopt -p\n"
    << "\\builtin set +euxv +o pipefail\n"
    << mark("cwd") << "; \\builtin pwd\n"
    << mark("umask") << "; \\builtin umask\n"
    << mark("vars") << "; \\builtin declare -p\n"
    << mark("functions") << "; \\builtin declare -f\n"
    << mark("aliases") << "; \\builtin alias -p\n"
    << mark("end") << "\n"
    << "} >" << ShellQuote(state_path) << " 2>/dev/null";
  return c.str();
}

// `declare -p` prints one line per variable (values with newlines use
// $'...' quoting); a line that does not start a declaration continues the
// previous one, in case a bash version prints raw newlines.
std::vector<std::string> SplitDeclarations(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("declare -", 0) == 0 || out.empty()) out.push_back(line);
    else out.back() += "\n" + line;
  }
  return out;
}

}  // namespace

static std::string StripOneNewline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') out += "'\\''";
    else out.push_back(ch);
  }
  out += "'";
  return out;
}

std::string BuildActionScript(const ShellState& state, const std::string& command,
                              const std::string& state_path, const std::string& token) {
  std::ostringstream s;
  // \builtin: the user's aliases must not redirect the wrapper's own commands.
  s << "\\builtin trap -- " << ShellQuote(CaptureProgram(state_path, token)) << " EXIT\n"
    << "\\builtin cd -- " << ShellQuote(state.cwd) << " 2>/dev/null || \\builtin cd /\n";
  char umask_text[16];
  std::snprintf(umask_text, sizeof(umask_text), "%04o", state.umask);
  s << "\\builtin umask " << umask_text << "\n";
  s << "{\n" << state.env << "\n" << state.variables << "\n:\n} 2>/dev/null\n";
  // Functions, aliases, options and the command are handed to the -c
  // program (ActionShellProgram) as variables: functions defined in this
  // sourced file would name it in their error messages.
  std::string options;
  std::stringstream opts(state.options);
  std::string line;
  while (std::getline(opts, line)) {
    if (!line.empty()) options += "\\builtin " + line + "\n";
  }
  s << "__specula_funcs=" << ShellQuote(state.functions + "\n:") << "\n"
    << "__specula_aliases=" << ShellQuote("\\builtin shopt -s expand_aliases\n" + state.aliases + "\n:") << "\n"
    << "__specula_opts=" << ShellQuote(options + ":") << "\n"
    << "__specula_cmd=" << ShellQuote(command) << "\n";
  return s.str();
}

std::string ActionShellProgram(const std::string& script_path) {
  // Runs as `bash -c`, so bash names itself "bash" in error messages and
  // counts lines of the command from 1, exactly as `bash -c CMD` would;
  // nothing here depends on the action, the token or the state's size.
  // Order matters: functions are parsed before aliases exist (their text is
  // already alias-expanded), aliases before the command is parsed, options
  // last so errexit/nounset do not apply to the restore itself.
  // One line: bash numbers the lines of an eval'd string from the line the
  // eval is on, and `bash -c CMD` starts CMD at line 1.
  return "\\builtin . " + ShellQuote(script_path) +
         "; \\builtin eval -- \"$__specula_funcs\" 2>/dev/null"
         "; \\builtin eval -- \"$__specula_aliases\" 2>/dev/null"
         "; \\builtin eval -- \"$__specula_opts\" 2>/dev/null"
         "; \\builtin eval -- \"\\builtin unset __specula_funcs __specula_aliases __specula_opts __specula_cmd;"
         " $__specula_cmd\"";
}

Result<ShellState> ParseCapturedState(const std::string& text, const std::string& token) {
  const std::string prefix = "@@specula:" + token + ":";
  std::string section;
  std::string options, cwd, umask_text, functions, aliases, vars;
  bool ended = false;
  size_t pos = 0;
  while (pos < text.size() && !ended) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string_view line(text.data() + pos, end - pos);
    pos = end;
    std::string_view bare = line;
    if (!bare.empty() && bare.back() == '\n') bare.remove_suffix(1);
    if (bare.substr(0, prefix.size()) == prefix) {
      std::string name(bare.substr(prefix.size()));
      if (name == "end") {
        ended = true;
      } else {
        section = name;
      }
      continue;
    }
    if (section == "options") options.append(line);
    else if (section == "cwd") cwd.append(line);
    else if (section == "umask") umask_text.append(line);
    else if (section == "vars") vars.append(line);
    else if (section == "functions") functions.append(line);
    else if (section == "aliases") aliases.append(line);
    else return Error(Code::kDataLoss, "captured shell state: text outside a section");
  }
  if (!ended) return Error(Code::kDataLoss, "captured shell state is incomplete");

  ShellState s;
  s.cwd = StripOneNewline(cwd);
  umask_text = StripOneNewline(umask_text);
  auto [ptr, ec] = std::from_chars(umask_text.data(), umask_text.data() + umask_text.size(), s.umask, 8);
  if (ec != std::errc() || umask_text.empty() || ptr != umask_text.data() + umask_text.size()) {
    return Error(Code::kDataLoss, "captured shell state: bad umask '" + umask_text + "'");
  }
  for (const auto& e : SplitDeclarations(vars)) {
    // "declare -<flags> name=value": exported variables carry the x flag.
    std::istringstream words(e);
    std::string declare, flags, rest;
    words >> declare >> flags >> rest;
    std::string name = rest.substr(0, rest.find('='));
    if (IsSpecialVariable(name)) continue;
    bool exported = flags.size() > 1 && flags[0] == '-' && flags.find('x') != std::string::npos;
    (exported ? s.env : s.variables) += e + "\n";
  }
  s.functions = functions;
  s.aliases = aliases;
  s.options = options;
  Status st = s.Validate();
  if (!st.ok()) return Error(Code::kDataLoss, "captured " + std::move(st).error().message());
  return s;
}

}  // namespace specula::sandbox
