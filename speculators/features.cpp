#include "speculators/features.h"

#include <algorithm>
#include <cctype>

namespace specula::speculators {
namespace {

constexpr const char* kSpace = " \t\r\n\v\f";

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimView(std::string_view s) {
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

void AddUnique(std::vector<std::string>& v, std::string s, size_t max = 64) {
  if (s.empty() || v.size() >= max) return;
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

struct Token {
  enum Kind { kWord, kOp } kind = kWord;
  std::string text;
  bool quoted = false;
};

// A shell-ish lexer for one line: words (quotes removed) and the operators
// && || ; | & > >> < << (an fd number glued to > becomes part of the
// operator: "2>", "2>&"). Good enough to find programs, operands and
// redirects; it never fails (an unterminated quote runs to the end).
std::vector<Token> Lex(std::string_view line) {
  std::vector<Token> out;
  std::string cur;
  bool in_word = false, quoted = false;
  auto flush = [&] {
    if (in_word) out.push_back({Token::kWord, cur, quoted});
    cur.clear();
    in_word = quoted = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      flush();
    } else if (c == '\'') {
      in_word = quoted = true;
      size_t e = line.find('\'', i + 1);
      if (e == std::string_view::npos) e = line.size();
      cur.append(line.substr(i + 1, e - i - 1));
      i = e;
    } else if (c == '"') {
      in_word = quoted = true;
      size_t j = i + 1;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        cur.push_back(line[j]);
      }
      i = j;
    } else if (c == '\\' && i + 1 < line.size()) {
      in_word = true;
      cur.push_back(line[++i]);
    } else if (c == '&' || c == '|' || c == ';' || c == '<' || c == '>') {
      std::string op(1, c);
      if (c == '>' && in_word && !quoted && !cur.empty() &&
          std::all_of(cur.begin(), cur.end(), IsDigit)) {
        op = cur + ">";  // "2>"
        cur.clear();
        in_word = false;
      } else {
        flush();
      }
      if (i + 1 < line.size()) {
        char n = line[i + 1];
        if ((c == '&' && n == '&') || (c == '|' && n == '|') || (c == '>' && n == '>') ||
            (c == '<' && n == '<') || (c == '>' && n == '&') || (c == '&' && n == '>')) {
          op.push_back(n);
          ++i;
        }
      }
      out.push_back({Token::kOp, op, false});
    } else {
      in_word = true;
      cur.push_back(c);
    }
  }
  flush();
  return out;
}

std::string Basename(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  size_t s = p.rfind('/');
  return std::string(s == std::string_view::npos ? p : p.substr(s + 1));
}

std::string Extension(std::string_view p) {
  std::string b = Basename(p);
  size_t d = b.rfind('.');
  if (d == std::string::npos || d == 0 || b.size() - d > 7) return "";
  std::string e = b.substr(d);
  for (char& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return e;
}

bool IsAssignment(const std::string& w) {
  size_t eq = w.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  for (size_t i = 0; i < eq; ++i) {
    if (!(IsAlnum(w[i]) || w[i] == '_')) return false;
  }
  return !IsDigit(w[0]);
}

bool ReadOnlyProg(const std::string& p) {
  static const char* kRead[] = {
      "cat", "head", "tail", "grep", "egrep", "fgrep", "rg", "find", "ls", "sed-n", "sed", "nl",
      "wc", "awk", "sort", "uniq", "cut", "tr", "diff", "file", "stat", "du", "df", "pwd", "echo",
      "printf", "which", "type", "tree", "less", "more", "xargs", "cd", "git-diff", "git-status",
      "git-log", "git-show", "git-grep", "git-blame", "pip-show", "pip-list", "pip-freeze",
      "python-version", "true", "test", "[", "readlink", "realpath", "basename", "dirname", "env",
      "id", "whoami", "uname", "date", "ps", "column", "od", "xxd", "hexdump", "strings", "jq",
      "cmp", "md5sum", "sha256sum", "sysctl", "systemctl-status", "ss", "netstat", "ip", "getent"};
  for (const char* r : kRead) {
    if (p == r) return true;
  }
  return false;
}

struct Segment {
  std::vector<std::string> words;
  bool piped_from = false;  // reads the previous segment's output
  std::string next_op;      // operator after it
};

// Splits tokens into segments; redirect targets go to `written` (or are
// dropped), input redirects to `inputs`, here-document delimiters are
// returned through `heredoc_delim`.
std::vector<Segment> Segments(const std::vector<Token>& toks, std::vector<std::string>& written,
                              std::vector<std::string>& inputs, std::string* heredoc_delim,
                              bool* heredoc_strip_tabs) {
  std::vector<Segment> segs(1);
  for (size_t i = 0; i < toks.size(); ++i) {
    const Token& t = toks[i];
    if (t.kind == Token::kWord) {
      segs.back().words.push_back(t.text);
      continue;
    }
    const std::string& op = t.text;
    if (op == "&&" || op == "||" || op == ";" || op == "|" || op == "&") {
      segs.back().next_op = op;
      segs.emplace_back();
      segs.back().piped_from = op == "|";
      continue;
    }
    bool has_target = i + 1 < toks.size() && toks[i + 1].kind == Token::kWord;
    if (op == "<<") {
      if (has_target) {
        std::string d = toks[i + 1].text;
        bool strip = false;
        if (!d.empty() && d[0] == '-') {
          strip = true;
          d.erase(0, 1);
        }
        if (heredoc_delim && heredoc_delim->empty() && !d.empty()) {
          *heredoc_delim = d;
          if (heredoc_strip_tabs) *heredoc_strip_tabs = strip;
        }
        ++i;
      }
      continue;
    }
    if (op == "<") {
      if (has_target) inputs.push_back(toks[++i].text);
      continue;
    }
    // Output redirects: > >> >& &> N> N>& N>>
    bool fd_dup = op.back() == '&';
    bool stderr_only = !op.empty() && IsDigit(op[0]) && op[0] != '1';
    if (has_target) {
      const std::string& target = toks[++i].text;
      bool to_fd = fd_dup || (!target.empty() && (target[0] == '&' || IsDigit(target[0])) &&
                              std::all_of(target.begin() + (target[0] == '&' ? 1 : 0), target.end(), IsDigit));
      if (!to_fd && !stderr_only && target != "/dev/null" && target.rfind("/dev/", 0) != 0) {
        AddUnique(written, target);
      }
    }
  }
  return segs;
}

// The program of a segment and the index of its first argument, skipping
// assignments and wrappers (sudo, env, timeout N, nice, time, nohup, exec).
std::pair<std::string, size_t> ProgramOf(const Segment& s) {
  size_t i = 0;
  const auto& w = s.words;
  while (i < w.size()) {
    if (IsAssignment(w[i])) {
      ++i;
      continue;
    }
    const std::string& x = w[i];
    if (x == "sudo" || x == "env" || x == "nice" || x == "time" || x == "nohup" || x == "exec" ||
        x == "command") {
      ++i;
      while (i < w.size() && !w[i].empty() && w[i][0] == '-') ++i;
      continue;
    }
    if (x == "timeout") {
      ++i;
      while (i < w.size() && !w[i].empty() && w[i][0] == '-') ++i;
      if (i < w.size()) ++i;  // the duration
      continue;
    }
    break;
  }
  if (i >= w.size()) return {"", i};
  return {Basename(w[i]), i + 1};
}

std::string NormalizedProg(const Segment& s, size_t* first_arg) {
  auto prog_arg = ProgramOf(s);
  const std::string p = prog_arg.first;
  const size_t a = prog_arg.second;
  *first_arg = a;
  const auto& w = s.words;
  auto arg = [&](size_t k) -> std::string { return a + k < w.size() ? w[a + k] : ""; };
  if (p.empty()) return "";
  if (p.rfind("python", 0) == 0) {
    std::string a0 = arg(0);
    if (a0 == "-c") return "python-c";
    if (a0 == "-m") return "python-m-" + arg(1).substr(0, 16);
    if (a0 == "--version" || a0 == "-V") return "python-version";
    if (a0 == "-") return "python-stdin";
    for (size_t k = 0; a + k < w.size(); ++k) {
      if (!w[a + k].empty() && w[a + k][0] != '-') return "python-file";
    }
    return "python";
  }
  if (p == "pytest" || p == "py.test") return "python-m-pytest";
  if (p == "pip" || p == "pip3") return "pip-" + arg(0).substr(0, 12);
  if (p == "git") {
    size_t k = 0;
    while (!arg(k).empty() && arg(k)[0] == '-') k += (arg(k) == "-C" || arg(k) == "-c") ? 2 : 1;
    return "git-" + arg(k).substr(0, 12);
  }
  if (p == "systemctl") return "systemctl-" + arg(0).substr(0, 12);
  if (p == "sed") {
    bool n = false;
    for (size_t k = a; k < w.size(); ++k) {
      if (w[k] == "-i" || w[k].rfind("-i", 0) == 0 || w[k] == "--in-place") return "sed-i";
      if (w[k] == "-n" || w[k] == "--quiet") n = true;
    }
    return n ? "sed-n" : "sed";
  }
  if (p == "egrep" || p == "fgrep" || p == "rg") return "grep";
  if (p.size() > 20) return "other";
  for (char c : p) {
    if (!(IsAlnum(c) || c == '_' || c == '-' || c == '.' || c == '+')) return "other";
  }
  return p;
}

// Words of a segment that are operands (not options, not the program, not a
// pattern/script argument).
void CollectPaths(const Segment& s, const std::string& prog, size_t first_arg,
                  std::vector<std::string>& paths) {
  bool skip_first = prog == "grep" || prog == "sed" || prog == "sed-n" || prog == "sed-i" ||
                    prog == "awk" || prog == "python-c" || prog == "git-grep";
  bool skipped = false;
  const auto& w = s.words;
  for (size_t k = first_arg; k < w.size(); ++k) {
    const std::string& x = w[k];
    if (x.empty()) continue;
    if (x[0] == '-') {
      // An option with a separate value: grep -e PATTERN, -A 5, find -name X.
      if ((prog == "grep" && (x == "-e" || x == "--regexp")) || (prog.rfind("sed", 0) == 0 && x == "-e")) {
        ++k;
        skipped = true;
      }
      continue;
    }
    if (skip_first && !skipped) {
      skipped = true;
      continue;
    }
    if (PathLike(x)) AddUnique(paths, x);
  }
}

}  // namespace

bool IsPathChar(char c) {
  return IsAlnum(c) || c == '_' || c == '.' || c == '/' || c == '-' || c == '~' || c == '+' ||
         c == '@';
}

bool PathLike(std::string_view w) {
  if (w.size() < 3 || w.size() > 200) return false;
  if (w.rfind("http:", 0) == 0 || w.rfind("https:", 0) == 0 || w.rfind("//", 0) == 0) return false;
  if (w.rfind("s/", 0) == 0 || w.rfind("y/", 0) == 0) return false;  // sed scripts
  bool slash = false, alnum = false;
  for (char c : w) {
    if (!IsPathChar(c)) return false;
    if (c == '/') slash = true;
    if (IsAlnum(c)) alnum = true;
  }
  if (!alnum) return false;
  if (w.front() == '-' || w.front() == '@' || w.front() == '+') return false;
  // Versions and numbers: 1.2.3, 0.5
  if (std::all_of(w.begin(), w.end(), [](char c) { return IsDigit(c) || c == '.'; })) return false;
  if (slash) {
    // At least one name character next to a slash, not just "a/b" of a diff.
    return w.find("//") == std::string_view::npos && !(w.size() <= 3 && w[1] == '/');
  }
  // name.ext: ext of 1..6 characters, starting with a letter; the name not
  // all digits; not "e.g" style abbreviations (single letters).
  size_t d = w.rfind('.');
  if (d == std::string_view::npos || d == 0 || d + 1 >= w.size() || w.size() - d - 1 > 6) return false;
  if (!std::isalpha(static_cast<unsigned char>(w[d + 1]))) return false;
  if (d < 2 && w.size() - d - 1 < 2) return false;
  for (size_t i = d + 1; i < w.size(); ++i) {
    if (!IsAlnum(w[i])) return false;
  }
  return true;
}

CommandInfo AnalyzeCommand(std::string_view command) {
  CommandInfo info;
  std::string_view text = TrimView(command);
  info.text = std::string(text);
  // Lines that are code (not here-document bodies, not leading comments).
  std::vector<std::string_view> code;
  std::string delim;
  bool strip_tabs = false;
  bool leading = true;
  size_t pos = 0;
  std::vector<std::string> inputs;
  std::vector<Segment> all_segs;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (!delim.empty()) {
      std::string_view l = line;
      if (strip_tabs) {
        while (!l.empty() && l.front() == '\t') l.remove_prefix(1);
      }
      if (TrimView(l) == delim) delim.clear();
      continue;
    }
    std::string_view t = TrimView(line);
    if (t.empty()) continue;
    if (leading && t.front() == '#') continue;
    leading = false;
    code.push_back(t);
    auto toks = Lex(t);
    std::string d;
    auto segs = Segments(toks, info.written, inputs, &d, &strip_tabs);
    if (!d.empty()) {
      delim = d;
      info.heredoc = true;
    }
    if (code.size() == 1) {
      // Numbers of the first code line.
      for (size_t i = 0; i < t.size(); ++i) {
        if (!IsDigit(t[i]) || (i > 0 && (IsAlnum(t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '.'))) continue;
        size_t j = i;
        long v = 0;
        while (j < t.size() && IsDigit(t[j]) && v < 100000000) v = v * 10 + (t[j++] - '0');
        // A single letter may follow ("180p" in a sed range, "5d"), not more.
        bool suffix = j < t.size() && std::isalpha(static_cast<unsigned char>(t[j])) &&
                      (j + 1 >= t.size() || !(IsAlnum(t[j + 1]) || t[j + 1] == '_'));
        if (!suffix && j < t.size() && (IsAlnum(t[j]) || t[j] == '_' || (t[j] == '.' && j + 1 < t.size() && IsDigit(t[j + 1])))) {
          i = j;
          continue;
        }
        if (v >= 1 && info.numbers.size() < 8) info.numbers.push_back(v);
        i = j;
      }
    }
    for (auto& s : segs) all_segs.push_back(std::move(s));
  }
  // The main segment: the first one that is not "cd D".
  size_t main = 0;
  while (main < all_segs.size()) {
    size_t a;
    std::string p = NormalizedProg(all_segs[main], &a);
    if (p == "cd" && main + 1 < all_segs.size() &&
        (all_segs[main].next_op == "&&" || all_segs[main].next_op == ";")) {
      if (info.cd_dir.empty() && a < all_segs[main].words.size()) info.cd_dir = all_segs[main].words[a];
      ++main;
      continue;
    }
    break;
  }
  bool read_only = !info.heredoc;
  std::string main_ext;
  for (size_t i = 0; i < all_segs.size(); ++i) {
    const Segment& s = all_segs[i];
    size_t a;
    std::string p = NormalizedProg(s, &a);
    if (p.empty()) continue;
    if (!(p == "cd" && i < main)) CollectPaths(s, p, a, info.paths);
    const auto& w = s.words;
    if (p == "tee") {
      for (size_t k = a; k < w.size(); ++k) {
        if (!w[k].empty() && w[k][0] != '-') AddUnique(info.written, w[k]);
      }
    } else if ((p == "cp" || p == "mv" || p == "install") && w.size() >= a + 2) {
      AddUnique(info.edited, w.back());
    } else if (p == "touch") {
      for (size_t k = a; k < w.size(); ++k) {
        if (!w[k].empty() && w[k][0] != '-') AddUnique(info.edited, w[k]);
      }
    } else if (p == "sed-i") {
      for (size_t k = w.size(); k-- > a;) {
        if (PathLike(w[k])) {
          AddUnique(info.edited, w[k]);
          break;
        }
      }
    }
    std::string rp = p;
    if (p == "find") {
      for (const auto& x : w) {
        if (x == "-delete") rp = "find-delete";
        if (x == "-exec" || x == "-execdir") {
          // find ... -exec PROG: read-only when PROG is.
        }
      }
      for (size_t k = 0; k + 1 < w.size(); ++k) {
        if ((w[k] == "-exec" || w[k] == "-execdir") && !ReadOnlyProg(Basename(w[k + 1]))) rp = "find-exec";
      }
    }
    if (p == "xargs") {
      for (size_t k = a; k < w.size(); ++k) {
        if (w[k].empty() || w[k][0] == '-') continue;
        if (!ReadOnlyProg(Basename(w[k]))) rp = "xargs-write";
        break;
      }
    }
    if (!ReadOnlyProg(rp)) read_only = false;
    if (i == main) {
      info.prog = p;
      if (info.heredoc && (p == "cat" || p == "tee") && !info.written.empty()) info.prog = "write";
      else if (info.heredoc && p.rfind("python", 0) == 0) info.prog = "python-stdin";
      info.kind = info.prog;
      if (i + 1 < all_segs.size() && all_segs[i].next_op == "|") {
        size_t b;
        std::string np = NormalizedProg(all_segs[i + 1], &b);
        info.kind += "|" + np.substr(0, np.find('-'));
      }
      // "write" with nothing written is write(1), the program, not a here-document.
      if (info.prog == "write" && !info.written.empty()) {
        main_ext = Extension(info.written.front());
        if (code.size() > 1 && all_segs.size() > i + 1) info.kind += "+run";
      } else {
        std::vector<std::string> own;
        CollectPaths(s, p, a, own);
        if (!own.empty()) main_ext = Extension(own.front());
      }
      if (!main_ext.empty()) info.kind += ":" + main_ext;
    }
  }
  for (const auto& in : inputs) {
    if (PathLike(in)) AddUnique(info.paths, in);
  }
  if (!info.written.empty() || !info.edited.empty()) read_only = false;
  if (info.prog.empty()) info.prog = info.kind = code.empty() ? "comment" : "other";
  info.read_only = read_only && !all_segs.empty();
  return info;
}

OutputInfo AnalyzeOutput(const Step& step, const CommandInfo& command, size_t max_bytes) {
  OutputInfo o;
  std::string_view out(step.stdout_text);
  std::string_view err(step.stderr_text);
  if (out.size() > max_bytes) out = out.substr(0, max_bytes);
  if (err.size() > max_bytes) err = err.substr(0, max_bytes);
  auto contains = [&](std::string_view needle) {
    return out.find(needle) != std::string_view::npos || err.find(needle) != std::string_view::npos;
  };
  if (!step.has_outcome) {
    o.status = "?";
  } else {
    size_t nm = std::string_view::npos;
    std::string_view where;
    for (std::string_view s : {out, err}) {
      nm = s.find("No module named ");
      if (nm != std::string_view::npos) {
        where = s.substr(nm + 16);
        break;
      }
    }
    if (nm != std::string_view::npos) {
      size_t i = 0;
      if (!where.empty() && (where[0] == '\'' || where[0] == '"')) ++i;
      size_t j = i;
      while (j < where.size() && (IsAlnum(where[j]) || where[j] == '_')) ++j;
      o.missing_module = std::string(where.substr(i, j - i));
      o.status = "nomod";
    } else if (contains("Traceback (most recent call last)")) {
      o.status = "tb";
    } else if (step.exit_code != 0) {
      o.status = "fail";
    } else if (TrimView(out).empty() && TrimView(err).empty()) {
      o.status = "empty";
    } else {
      o.status = "ok";
    }
  }
  // Paths.
  if (command.prog == "ls") {
    size_t pos = 0;
    while (pos < out.size() && o.paths.size() < 12) {
      size_t nl = out.find('\n', pos);
      std::string_view line = out.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? out.size() : nl + 1;
      line = TrimView(line);
      if (line.empty() || line.rfind("total ", 0) == 0 || line.back() == ':') continue;
      size_t sp = line.find_last_of(" \t");
      std::string_view name = sp == std::string_view::npos ? line : line.substr(sp + 1);
      while (!name.empty() && (name.back() == '/' || name.back() == '*' || name.back() == '@')) name.remove_suffix(1);
      if (name.empty() || name == "." || name == "..") continue;
      if (std::all_of(name.begin(), name.end(), IsPathChar)) AddUnique(o.paths, std::string(name), 12);
    }
  } else {
    for (std::string_view s : {out, err}) {
      size_t i = 0;
      while (i < s.size() && o.paths.size() < 12) {
        while (i < s.size() && !IsPathChar(s[i])) ++i;
        size_t j = i;
        while (j < s.size() && IsPathChar(s[j])) ++j;
        std::string_view w = s.substr(i, j - i);
        i = j;
        while (!w.empty() && (w.back() == '.' || w.back() == '-')) w.remove_suffix(1);
        if (PathLike(w)) AddUnique(o.paths, std::string(w), 12);
      }
    }
  }
  // grep -n style line numbers: "N:" / "N-" at a line start, or "path:N:".
  size_t pos = 0;
  while (pos < out.size() && o.line_numbers.size() < 8) {
    size_t nl = out.find('\n', pos);
    std::string_view line = out.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? out.size() : nl + 1;
    size_t i = 0;
    if (!line.empty() && !IsDigit(line[0])) {
      size_t c = line.find(':');
      if (c == std::string_view::npos || c == 0 || !PathLike(line.substr(0, c))) continue;
      i = c + 1;
    }
    size_t j = i;
    long v = 0;
    while (j < line.size() && IsDigit(line[j]) && v < 100000000) v = v * 10 + (line[j++] - '0');
    if (j == i || j >= line.size() || (line[j] != ':' && line[j] != '-')) continue;
    if (v >= 1 && std::find(o.line_numbers.begin(), o.line_numbers.end(), v) == o.line_numbers.end()) {
      o.line_numbers.push_back(v);
    }
  }
  return o;
}

std::vector<std::string> TaskQuotes(std::string_view task, size_t max) {
  std::vector<std::string> out;
  bool fence = false;
  size_t pos = 0;
  while (pos < task.size() && out.size() < max) {
    size_t nl = task.find('\n', pos);
    std::string_view line = task.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? task.size() : nl + 1;
    std::string_view t = TrimView(line);
    if (t.rfind("```", 0) == 0) {
      fence = !fence;
      continue;
    }
    if (fence) {
      if (!t.empty() && t.size() <= 120) AddUnique(out, std::string(t), max);
      continue;
    }
    // `spans` and "spans" first, then path-like words.
    for (char q : {'`', '"'}) {
      size_t i = 0;
      while ((i = line.find(q, i)) != std::string_view::npos) {
        size_t e = line.find(q, i + 1);
        if (e == std::string_view::npos) break;
        std::string_view span = TrimView(line.substr(i + 1, e - i - 1));
        if (span.size() >= 3 && span.size() <= 120 && (q == '`' || PathLike(span))) {
          AddUnique(out, std::string(span), max);
        }
        i = e + 1;
      }
    }
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && !IsPathChar(line[i])) ++i;
      size_t j = i;
      while (j < line.size() && IsPathChar(line[j])) ++j;
      std::string_view w = line.substr(i, j - i);
      i = j;
      while (!w.empty() && (w.back() == '.' || w.back() == '-')) w.remove_suffix(1);
      if (PathLike(w) && w.find('/') != std::string_view::npos) AddUnique(out, std::string(w), max);
    }
  }
  return out;
}

}  // namespace specula::speculators
