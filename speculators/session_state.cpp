#include "speculators/session_state.h"

#include <algorithm>
#include <cctype>

namespace specula::speculators {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string Basename(const std::string& p) {
  size_t e = p.size();
  while (e > 1 && p[e - 1] == '/') --e;
  size_t s = p.rfind('/', e - 1);
  return s == std::string::npos ? p.substr(0, e) : p.substr(s + 1, e - s - 1);
}

// The same path relative to `dir` (or without a leading "./"), "" if no
// shorter form.
std::string Relative(const std::string& p, const std::string& dir) {
  if (p.rfind("./", 0) == 0 && p.size() > 2) return p.substr(2);
  if (!dir.empty() && dir != "/") {
    std::string d = dir.back() == '/' ? dir : dir + "/";
    if (p.size() > d.size() && p.compare(0, d.size(), d) == 0) return p.substr(d.size());
  }
  return "";
}

// A boundary for a slot value: path values must not continue into more path
// characters, numbers not into more digits.
bool BoundaryOk(std::string_view s, size_t at, size_t len, bool numeric) {
  auto bad = [&](char c) { return numeric ? (IsDigit(c) || c == '.') : IsPathChar(c); };
  if (at > 0 && bad(s[at - 1])) return false;
  if (at + len < s.size() && bad(s[at + len])) {
    // A trailing '.' or '-' ends a sentence or a range, not a path.
    char c = s[at + len];
    bool end = !numeric && (c == '.' || c == '-') && (at + len + 1 == s.size() || !IsPathChar(s[at + len + 1]));
    if (!end) return false;
  }
  return true;
}

bool Templatable(std::string_view c) {
  if (c.empty() || c.size() > kMaxTemplateBytes) return false;
  for (char ch : c) {
    if (ch == '\n' || ch == kSlotOpen || ch == kSlotClose) return false;
  }
  return true;
}

std::string Ref(const std::string& name) {
  std::string r;
  r.reserve(name.size() + 2);
  r.push_back(kSlotOpen);
  r += name;
  r.push_back(kSlotClose);
  return r;
}

struct Hit {
  size_t at, len;
  const Slot* slot;
};

std::string Apply(std::string_view c, std::vector<Hit> hits) {
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.at < b.at; });
  std::string out;
  size_t pos = 0;
  for (const auto& h : hits) {
    out.append(c.substr(pos, h.at - pos));
    out += Ref(h.slot->name);
    pos = h.at + h.len;
  }
  out.append(c.substr(pos));
  return out;
}

void Occurrences(std::string_view c, const Slot& s, std::vector<Hit>& out) {
  if (s.value.empty()) return;
  size_t at = 0;
  while ((at = c.find(s.value, at)) != std::string_view::npos) {
    if (BoundaryOk(c, at, s.value.size(), s.numeric)) out.push_back({at, s.value.size(), &s});
    at += s.value.size();
  }
}

}  // namespace

bool HasSlots(std::string_view tmpl) { return tmpl.find(kSlotOpen) != std::string_view::npos; }

std::vector<std::string> Abstract(std::string_view command, const Slots& slots, size_t max_variants) {
  std::vector<std::string> out;
  if (!Templatable(command) || max_variants == 0) return out;
  out.emplace_back(command);
  // Every occurrence of every slot value.
  std::vector<Hit> all;
  for (const auto& s : slots) {
    if (s.value.size() < (s.numeric ? 2 : 3)) continue;
    Occurrences(command, s, all);
  }
  if (all.empty()) return out;
  // Maximal: longest values first (then slot order), no overlaps.
  std::vector<Hit> order = all;
  std::stable_sort(order.begin(), order.end(), [](const Hit& a, const Hit& b) { return a.len > b.len; });
  std::vector<Hit> chosen;
  std::vector<bool> covered(command.size(), false);
  for (const auto& h : order) {
    bool free = true;
    for (size_t i = h.at; i < h.at + h.len; ++i) free = free && !covered[i];
    if (!free) continue;
    // One name per value: the first slot (in slot order) that has it.
    bool same_value_other_name = false;
    for (const auto& c : chosen) {
      if (c.slot->value == h.slot->value && c.slot != h.slot) same_value_other_name = true;
    }
    if (same_value_other_name) continue;
    for (size_t i = h.at; i < h.at + h.len; ++i) covered[i] = true;
    chosen.push_back(h);
  }
  auto add = [&](std::string t) {
    if (out.size() < max_variants && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(std::move(t));
  };
  add(Apply(command, chosen));
  // One slot at a time (all occurrences of its value).
  for (const auto& s : slots) {
    if (out.size() >= max_variants) break;
    std::vector<Hit> mine;
    for (const auto& h : all) {
      if (h.slot == &s) mine.push_back(h);
    }
    if (!mine.empty()) add(Apply(command, mine));
  }
  return out;
}

std::optional<std::string> Instantiate(std::string_view tmpl, const Slots& slots) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t pos = 0;
  while (pos < tmpl.size()) {
    size_t o = tmpl.find(kSlotOpen, pos);
    if (o == std::string_view::npos) {
      out.append(tmpl.substr(pos));
      break;
    }
    out.append(tmpl.substr(pos, o - pos));
    size_t c = tmpl.find(kSlotClose, o + 1);
    if (c == std::string_view::npos) return std::nullopt;
    std::string_view name = tmpl.substr(o + 1, c - o - 1);
    const Slot* found = nullptr;
    for (const auto& s : slots) {
      if (s.name == name) {
        found = &s;
        break;
      }
    }
    if (!found || found->value.empty()) return std::nullopt;
    out += found->value;
    pos = c + 1;
  }
  return out;
}

std::vector<std::string> TemplateSlotNames(std::string_view tmpl) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = tmpl.find(kSlotOpen, pos)) != std::string_view::npos) {
    size_t c = tmpl.find(kSlotClose, pos + 1);
    if (c == std::string_view::npos) break;
    std::string n(tmpl.substr(pos + 1, c - pos - 1));
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(std::move(n));
    pos = c + 1;
  }
  return out;
}

std::string PrintableTemplate(std::string_view tmpl) {
  std::string out;
  for (char c : tmpl) {
    if (c == kSlotOpen) out += '{';
    else if (c == kSlotClose) out += '}';
    else out += c;
  }
  return out;
}

SessionState::SessionState(std::string_view task) : task_quotes_(TaskQuotes(task)) { Rebuild(); }

const Slot* SessionState::Find(std::string_view name) const {
  for (const auto& s : slots_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void SessionState::Push(const Step& step) { Push(step, AnalyzeCommand(step.command)); }

void SessionState::Push(const Step& step, CommandInfo cmd) {
  // The template of this command in the context it was run in (a context
  // key for the next prediction). Here-documents are known by their kind.
  std::string tmpl;
  if (cmd.heredoc) {
    tmpl = "<<" + cmd.kind;
  } else {
    auto variants = Abstract(cmd.text, slots_, 2);
    tmpl = variants.size() >= 2 ? variants[1] : variants.empty() ? "~" + cmd.kind : variants[0];
  }
  if (tmpl.size() > 120) tmpl = "~" + cmd.kind;
  prev_kind_ = steps_ ? last_cmd_.kind : "^";
  last_template_ = std::move(tmpl);
  last_out_ = AnalyzeOutput(step, cmd);
  if (!cmd.cd_dir.empty()) cd_dir_ = cmd.cd_dir;
  else if (cmd.prog == "cd" && !cmd.paths.empty()) cd_dir_ = cmd.paths.front();
  for (const auto& w : cmd.written) {
    written_.erase(std::remove(written_.begin(), written_.end(), w), written_.end());
    written_.push_back(w);
  }
  if (written_.size() > 8) written_.erase(written_.begin(), written_.end() - 8);
  for (const auto& w : cmd.edited) {
    edited_.erase(std::remove(edited_.begin(), edited_.end(), w), edited_.end());
    edited_.push_back(w);
  }
  if (edited_.size() > 8) edited_.erase(edited_.begin(), edited_.end() - 8);
  recent_.push_back(cmd.paths);
  if (recent_.size() > 5) recent_.erase(recent_.begin());
  // The files the session works on: mentions, decaying by 0.85 a step.
  for (auto& f : focus_) f.second *= 0.85;
  auto mention = [&](const std::string& p, double w) {
    auto it = std::find_if(focus_.begin(), focus_.end(), [&](const auto& f) { return f.first == p; });
    if (it == focus_.end()) focus_.emplace_back(p, w);
    else it->second += w;
  };
  for (const auto& p : cmd.paths) mention(p, 1);
  for (const auto& w : cmd.written) mention(w, 1);
  for (const auto& w : cmd.edited) mention(w, 1);
  std::stable_sort(focus_.begin(), focus_.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  while (!focus_.empty() && (focus_.size() > 12 || focus_.back().second < 0.05)) focus_.pop_back();
  // Quoted arguments (first line only).
  {
    const std::string& t = cmd.text;
    size_t nl = t.find('\n');
    std::string_view first(t.data(), nl == std::string::npos ? t.size() : nl);
    std::vector<std::string> found;
    for (size_t i = 0; i < first.size() && found.size() < 2; ++i) {
      char q = first[i];
      if (q != '"' && q != '\'') continue;
      size_t e = first.find(q, i + 1);
      if (e == std::string_view::npos) break;
      std::string_view v = first.substr(i + 1, e - i - 1);
      if (v.size() >= 3 && v.size() <= 60 && !PathLike(v) && v.find(q == '"' ? '\'' : '"') == std::string_view::npos) {
        found.emplace_back(v);
      }
      i = e;
    }
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      quoted_.erase(std::remove(quoted_.begin(), quoted_.end(), *it), quoted_.end());
      quoted_.insert(quoted_.begin(), *it);
    }
    if (quoted_.size() > 4) quoted_.resize(4);
  }
  last_cmd_ = std::move(cmd);
  ++steps_;
  Rebuild();
}

void SessionState::Rebuild() {
  slots_.clear();
  auto add = [&](std::string name, const std::string& value, bool numeric = false) {
    if (value.empty()) return;
    slots_.push_back({std::move(name), value, numeric});
  };
  auto add_path = [&](const std::string& name, const std::string& value) {
    add(name, value);
    std::string b = Basename(value);
    if (b != value && b.size() >= 3 && b.find('.') != std::string::npos) add(name + ".b", b);
    std::string r = Relative(value, cd_dir_);
    if (!r.empty() && r != b) add(name + ".r", r);
  };
  for (size_t i = 0; i < 3 && i < written_.size(); ++i) {
    add_path("W" + std::to_string(i + 1), written_[written_.size() - 1 - i]);
  }
  for (size_t i = 0; i < 2 && i < edited_.size(); ++i) {
    add_path("E" + std::to_string(i + 1), edited_[edited_.size() - 1 - i]);
  }
  // Operands of recent commands, most recent command first.
  std::vector<std::string> ops;
  for (size_t r = recent_.size(); r-- > 0;) {
    for (const auto& p : recent_[r]) {
      if (ops.size() < 6 && std::find(ops.begin(), ops.end(), p) == ops.end()) ops.push_back(p);
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) add_path("C" + std::to_string(i + 1), ops[i]);
  for (size_t i = 0; i < 3 && i < focus_.size(); ++i) add_path("F" + std::to_string(i + 1), focus_[i].first);
  if (steps_) {
    for (size_t i = 0; i < last_out_.paths.size() && i < 10; ++i) {
      add_path("O" + std::to_string(i + 1), last_out_.paths[i]);
    }
    add("M", last_out_.missing_module);
  }
  // Quoted arguments of recent commands that are not paths (search
  // patterns, mostly), for "same search, other file".
  for (size_t i = 0; i < quoted_.size() && i < 3; ++i) add("G" + std::to_string(i + 1), quoted_[i]);
  for (size_t i = 0; i < task_quotes_.size(); ++i) add("Q" + std::to_string(i + 1), task_quotes_[i]);
  add("D", cd_dir_);
  if (steps_) {
    auto num = [&](const std::string& name, long v) {
      if (v >= 10) add(name, std::to_string(v), true);
    };
    const auto& n = last_cmd_.numbers;
    if (n.size() >= 2 && n[1] > n[0]) {
      long a = n[0], b = n[1];
      num("A", a);
      num("B", b);
      num("B+1", b + 1);
      num("2B-A", 2 * b - a);
      num("2B-A+1", 2 * b - a + 1);
    } else if (n.size() == 1) {
      num("A", n[0]);
    }
    // Line numbers of grep -n style output: viewing from one of them to
    // a round number after it (ceil10(L)+d: "L^+d"), or around it.
    const auto& l = last_out_.line_numbers;
    for (size_t i = 0; i < l.size() && i < 3; ++i) {
      long x = l[i];
      std::string L = "L" + std::to_string(i + 1);
      num(L, x);
      long up = (x + 9) / 10 * 10;
      for (long d : {10L, 20L, 30L, 50L}) num(L + "^+" + std::to_string(d), up + d);
      if (i == 0) {
        for (long d : {5L, 10L, 20L}) num(L + "-" + std::to_string(d), x - d);
        for (long d : {10L, 20L, 30L, 50L}) num(L + "+" + std::to_string(d), x + d);
      }
    }
    if (l.size() >= 2) num("L2-1", l[1] - 1);
  }
  keys_[0] = "*";
  if (!steps_) {
    keys_[1] = keys_[2] = keys_[3] = keys_[4] = "^";
    return;
  }
  keys_[1] = last_cmd_.prog;
  keys_[2] = last_cmd_.kind + "/" + last_out_.status;
  keys_[3] = keys_[2] + "<" + prev_kind_;
  keys_[4] = last_template_ + "/" + last_out_.status;
}

}  // namespace specula::speculators
