// Reads one TOML policy document onto a Policy: every key is checked for
// type, range and spelling, and every problem is reported (not just the
// first). Merging with a parent is implicit: the document is applied on top
// of the parent's merged policy, scalars replace, rules replace by key.
#include <seccomp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <set>

#include "policies/policy_internal.h"
#include "policies/value_parsers.h"

namespace specula::policy::internal {
namespace {

const char* TypeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string Quote(std::string_view s) { return QuoteValue(s); }

// Far more than any real policy; bounds the pairwise checks in validation.
constexpr size_t kMaxPathRules = 4096;
constexpr size_t kMaxSyscallRules = 1024;

constexpr std::array<const char*, 2> kNormalisations = {"collapse_whitespace",
                                                        "strip_trailing_semicolon"};

class DocumentReader {
 public:
  DocumentReader(const std::string& file, Policy& policy, Provenance& prov, PolicyErrors& errors)
      : file_(file), policy_(policy), prov_(prov), errors_(errors) {}

  void Read(const toml::table& root) {
    CheckKeys(root, "", {"name", "description", "extends", "filesystem", "syscalls", "network",
                         "resources", "speculation", "promotion", "sandbox"});
    if (auto s = String(root, "", "name")) {
      if (s->empty() || s->size() > 64 || !ValidTag(*s)) {
        Err(*root.get("name"), "name", "expected 1-64 characters of [A-Za-z0-9_.:-], got " + Quote(*s));
      } else {
        policy_.name = *s;
      }
    }
    policy_.description.clear();  // a parent's description does not describe the child
    if (auto s = String(root, "", "description")) policy_.description = *s;
    String(root, "", "extends");  // resolved by the caller; only its type is checked here
    if (auto* t = Table(root, "", "filesystem")) Filesystem(*t);
    if (auto* t = Table(root, "", "syscalls")) Syscalls(*t);
    if (auto* t = Table(root, "", "network")) NetworkSection(*t);
    if (auto* t = Table(root, "", "resources")) ResourcesSection(*t);
    if (auto* t = Table(root, "", "speculation")) SpeculationSection(*t);
    if (auto* t = Table(root, "", "promotion")) PromotionSection(*t);
    if (auto* t = Table(root, "", "sandbox")) SandboxSection(*t);
  }

 private:
  Origin At(const toml::node& n, std::string key) const {
    return Origin{file_, n.source().begin.line, n.source().begin.column, std::move(key)};
  }
  void Err(const toml::node& n, std::string key, std::string msg) {
    Origin o = At(n, key);
    AddAt(errors_, &o, std::move(key), std::move(msg));
  }
  static std::string Join(std::string_view prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
  }
  void Record(const toml::node& n, const std::string& key) { prov_.keys[key] = At(n, key); }

  // Unknown keys are errors, with the nearest known key as a suggestion.
  void CheckKeys(const toml::table& t, std::string_view prefix,
                 std::initializer_list<std::string_view> known) {
    for (auto&& [k, v] : t) {
      std::string_view name = k.str();
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string msg = "unknown key";
      // Suggest only close matches: 2 edits, or a third of the name's length.
      size_t best = std::max<size_t>(2, name.size() / 3) + 1;
      std::string_view guess;
      for (std::string_view cand : known) {
        size_t d = EditDistance(name, cand);
        if (d < best) best = d, guess = cand;
      }
      if (!guess.empty()) msg += " (did you mean " + Quote(guess) + "?)";
      Origin o{file_, k.source().begin.line, k.source().begin.column, Join(prefix, name)};
      if (o.line == 0) o = At(v, o.key);
      AddAt(errors_, &o, o.key, msg);
    }
  }

  const toml::table* Table(const toml::table& t, std::string_view prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      Err(*n, Join(prefix, key), std::string("expected a table, got ") + TypeName(n->type()));
      return nullptr;
    }
    return n->as_table();
  }
  const toml::array* Array(const toml::table& t, std::string_view prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_array()) {
      Err(*n, Join(prefix, key), std::string("expected an array, got ") + TypeName(n->type()));
      return nullptr;
    }
    return n->as_array();
  }
  std::optional<std::string> StringNode(const toml::node& n, const std::string& key) {
    if (!n.is_string()) {
      Err(n, key, std::string("expected a string, got ") + TypeName(n.type()));
      return std::nullopt;
    }
    return n.as_string()->get();
  }
  std::optional<std::string> String(const toml::table& t, std::string_view prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    return StringNode(*n, Join(prefix, key));
  }
  std::optional<bool> Bool(const toml::table& t, std::string_view prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    std::string k = Join(prefix, key);
    if (!n->is_boolean()) {
      Err(*n, k, std::string("expected true or false, got ") + TypeName(n->type()));
      return std::nullopt;
    }
    Record(*n, k);
    return n->as_boolean()->get();
  }
  std::optional<int64_t> Int(const toml::table& t, std::string_view prefix, std::string_view key,
                             int64_t min, int64_t max) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    std::string k = Join(prefix, key);
    if (!n->is_integer()) {
      Err(*n, k, std::string("expected an integer, got ") + TypeName(n->type()));
      return std::nullopt;
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      Err(*n, k, "expected an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                     ", got " + std::to_string(v));
      return std::nullopt;
    }
    Record(*n, k);
    return v;
  }
  // A size: an integer number of bytes or a string with a unit.
  std::optional<uint64_t> Size(const toml::table& t, std::string_view prefix, std::string_view key,
                               uint64_t min) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    std::string k = Join(prefix, key);
    uint64_t v;
    if (n->is_integer()) {
      if (n->as_integer()->get() < 0) {
        Err(*n, k, "expected a size, got a negative number");
        return std::nullopt;
      }
      v = static_cast<uint64_t>(n->as_integer()->get());
    } else if (n->is_string()) {
      auto p = ParseSize(n->as_string()->get());
      if (!p.ok()) {
        Err(*n, k, p.why());
        return std::nullopt;
      }
      v = p.value();
    } else {
      Err(*n, k, std::string("expected a size like \"512MiB\", got ") + TypeName(n->type()));
      return std::nullopt;
    }
    if (v < min) {
      Err(*n, k, "expected at least " + std::to_string(min) + " bytes, got " + std::to_string(v));
      return std::nullopt;
    }
    Record(*n, k);
    return v;
  }

  // ---- [filesystem] ----
  void Filesystem(const toml::table& fs) {
    CheckKeys(fs, "filesystem", {"hidden", "read_only", "sandboxed", "lossy"});
    PathList(fs, "hidden", PathMode::kHidden);
    PathList(fs, "read_only", PathMode::kReadOnly);
    PathList(fs, "sandboxed", PathMode::kSandboxed);
    if (const toml::array* lossy = Array(fs, "filesystem", "lossy")) {
      for (size_t i = 0; i < lossy->size(); ++i) LossyEntry((*lossy)[i], i);
    }
  }

  // Entries are "/path" or { path = "/path", reason = "..." }.
  void PathList(const toml::table& fs, std::string_view key, PathMode mode) {
    const toml::array* arr = Array(fs, "filesystem", key);
    if (arr == nullptr) return;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = (*arr)[i];
      std::string k = "filesystem." + std::string(key) + "[" + std::to_string(i) + "]";
      PathRule rule;
      rule.mode = mode;
      std::optional<std::string> raw;
      const toml::node* path_node = &el;
      if (el.is_table()) {
        const toml::table& t = *el.as_table();
        CheckKeys(t, k, {"path", "reason"});
        if (auto r = String(t, k, "reason")) rule.reason = *r;
        path_node = t.get("path");
        if (path_node == nullptr) {
          Err(el, k + ".path", "missing (every entry needs a path)");
          continue;
        }
        raw = StringNode(*path_node, k + ".path");
      } else if (el.is_string()) {
        raw = el.as_string()->get();
      } else {
        Err(el, k, std::string("expected a path string or { path = ..., reason = ... }, got ") +
                       TypeName(el.type()));
        continue;
      }
      if (!raw) continue;
      auto p = NormalisePolicyPath(*raw, false);
      if (!p.ok()) {
        Err(*path_node, k, p.why());
        continue;
      }
      rule.path = p.value();
      if (rule.path == "/" && mode == PathMode::kHidden) {
        Err(*path_node, k, "the root cannot be hidden");
        continue;
      }
      AddRule(std::move(rule), At(el, k));
    }
  }

  void LossyEntry(const toml::node& el, size_t i) {
    std::string k = "filesystem.lossy[" + std::to_string(i) + "]";
    if (!el.is_table()) {
      Err(el, k, std::string("expected a table { path, tag, compensation, reason }, got ") +
                     TypeName(el.type()));
      return;
    }
    const toml::table& t = *el.as_table();
    CheckKeys(t, k, {"path", "tag", "compensation", "reason"});
    PathRule rule;
    rule.mode = PathMode::kLossy;
    bool ok = true;
    if (const toml::node* pn = t.get("path")) {
      if (auto raw = StringNode(*pn, k + ".path")) {
        auto p = NormalisePolicyPath(*raw, true);
        if (!p.ok()) {
          Err(*pn, k + ".path", p.why());
          ok = false;
        } else if (p.value() == "/") {
          Err(*pn, k + ".path", "the root cannot be lossy (nothing would be sandboxed)");
          ok = false;
        } else {
          rule.path = p.value();
        }
      } else {
        ok = false;
      }
    } else {
      Err(el, k + ".path", "missing (every lossy entry needs a path)");
      ok = false;
    }
    if (const toml::node* tn = t.get("tag")) {
      if (auto tag = StringNode(*tn, k + ".tag")) {
        if (!ValidTag(*tag)) {
          Err(*tn, k + ".tag", "expected 1-64 characters of [A-Za-z0-9_.:-], got " + Quote(*tag));
          ok = false;
        }
        rule.tag = *tag;
      } else {
        ok = false;
      }
    } else {
      Err(el, k + ".tag", "missing (every lossy entry needs a tag; effects are journaled under it)");
      ok = false;
    }
    if (const toml::node* cn = t.get("compensation")) {
      if (auto c = StringNode(*cn, k + ".compensation")) {
        if (*c == "restore") {
          rule.compensation = Compensation::kRestore;
        } else if (*c == "none") {
          rule.compensation = Compensation::kNone;
        } else {
          Err(*cn, k + ".compensation", "expected \"restore\" or \"none\", got " + Quote(*c));
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (auto r = String(t, k, "reason")) rule.reason = *r;
    if (ok) AddRule(std::move(rule), At(el, k));
  }

  static const char* ModeWord(PathMode m) {
    switch (m) {
      case PathMode::kHidden: return "hidden";
      case PathMode::kReadOnly: return "read-only";
      case PathMode::kSandboxed: return "sandboxed";
      case PathMode::kLossy: return "lossy";
    }
    return "?";
  }

  // A path may appear once per file; across files the child's rule replaces.
  void AddRule(PathRule rule, Origin origin) {
    if (policy_.paths.size() >= kMaxPathRules) {
      AddAt(errors_, &origin, origin.key, "too many path rules (at most " + std::to_string(kMaxPathRules) + ")");
      return;
    }
    auto [it, fresh] = seen_paths_.emplace(rule.path, std::make_pair(rule.mode, origin));
    if (!fresh) {
      const auto& [mode, first] = it->second;
      std::string msg = mode == rule.mode
                            ? "path " + Quote(rule.path) + " is listed twice (first at " +
                                  first.key + ", " + first.Where() + ")"
                            : "path " + Quote(rule.path) + " is both " + ModeWord(mode) + " (" +
                                  first.key + ", " + first.Where() + ") and " + ModeWord(rule.mode);
      AddAt(errors_, &origin, origin.key, msg);
      return;
    }
    prov_.paths[rule.path] = origin;
    auto same = std::find_if(policy_.paths.begin(), policy_.paths.end(),
                             [&](const PathRule& r) { return r.path == rule.path; });
    if (same != policy_.paths.end()) {
      *same = std::move(rule);
    } else {
      policy_.paths.push_back(std::move(rule));
    }
  }

  // ---- [syscalls] ----
  void Syscalls(const toml::table& sc) {
    CheckKeys(sc, "syscalls", {"allow", "deny", "kill", "defer", "deny_errno"});
    int default_errno = EPERM;
    if (const toml::node* en = sc.get("deny_errno")) {
      if (auto e = Errno(*en, "syscalls.deny_errno")) default_errno = *e;
    }
    SyscallList(sc, "allow", SyscallAction::kAllow, default_errno);
    SyscallList(sc, "deny", SyscallAction::kDeny, default_errno);
    SyscallList(sc, "kill", SyscallAction::kKill, default_errno);
    SyscallList(sc, "defer", SyscallAction::kDefer, default_errno);
  }

  std::optional<int> Errno(const toml::node& n, const std::string& key) {
    std::string text;
    if (n.is_integer()) {
      text = std::to_string(n.as_integer()->get());
    } else if (n.is_string()) {
      text = n.as_string()->get();
    } else {
      Err(n, key, std::string("expected an errno name like \"EPERM\" or a number, got ") +
                      TypeName(n.type()));
      return std::nullopt;
    }
    auto e = ParseErrno(text);
    if (!e.ok()) {
      Err(n, key, e.why());
      return std::nullopt;
    }
    return e.value();
  }

  void SyscallList(const toml::table& sc, std::string_view key, SyscallAction action, int default_errno) {
    const toml::array* arr = Array(sc, "syscalls", key);
    if (arr == nullptr) return;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = (*arr)[i];
      std::string k = "syscalls." + std::string(key) + "[" + std::to_string(i) + "]";
      SyscallRule rule;
      rule.action = action;
      rule.errno_value = default_errno;
      const toml::node* name_node = &el;
      if (el.is_table() && action == SyscallAction::kDeny) {
        const toml::table& t = *el.as_table();
        CheckKeys(t, k, {"name", "errno"});
        if (const toml::node* en = t.get("errno")) {
          auto e = Errno(*en, k + ".errno");
          if (!e) continue;
          rule.errno_value = *e;
        }
        name_node = t.get("name");
        if (name_node == nullptr) {
          Err(el, k + ".name", "missing (every entry needs a syscall name)");
          continue;
        }
      } else if (!el.is_string()) {
        Err(el, k,
            std::string(action == SyscallAction::kDeny
                            ? "expected a syscall name or { name = ..., errno = ... }, got "
                            : "expected a syscall name, got ") +
                TypeName(el.type()));
        continue;
      }
      auto name = StringNode(*name_node, k);
      if (!name) continue;
      // libseccomp is what installs the filter, so its name table is the truth.
      if (name->empty() || seccomp_syscall_resolve_name(name->c_str()) == __NR_SCMP_ERROR) {
        Err(*name_node, k, "unknown syscall " + Quote(*name) + " (not known to libseccomp)");
        continue;
      }
      rule.name = *name;
      Origin origin = At(el, k);
      if (policy_.syscalls.size() >= kMaxSyscallRules) {
        AddAt(errors_, &origin, k, "too many syscall rules (at most " + std::to_string(kMaxSyscallRules) + ")");
        continue;
      }
      auto [it, fresh] = seen_syscalls_.emplace(rule.name, std::make_pair(action, origin));
      if (!fresh) {
        const auto& [first_action, first] = it->second;
        std::string msg = first_action == action
                              ? "syscall " + Quote(rule.name) + " is listed twice (first at " +
                                    first.key + ", " + first.Where() + ")"
                              : "syscall " + Quote(rule.name) + " is both " + ToString(first_action) +
                                    " (" + first.key + ", " + first.Where() + ") and " + ToString(action);
        AddAt(errors_, &origin, k, msg);
        continue;
      }
      prov_.syscalls[rule.name] = origin;
      auto same = std::find_if(policy_.syscalls.begin(), policy_.syscalls.end(),
                               [&](const SyscallRule& r) { return r.name == rule.name; });
      if (same != policy_.syscalls.end()) {
        *same = std::move(rule);
      } else {
        policy_.syscalls.push_back(std::move(rule));
      }
    }
  }

  // ---- [network] ---- (replaced as a whole: it is one decision)
  void NetworkSection(const toml::table& net) {
    CheckKeys(net, "network", {"mode", "allow", "lossy_tag"});
    policy_.network = Network{};
    for (const char* k : {"network.mode", "network.allow", "network.lossy_tag"}) prov_.keys.erase(k);
    if (const toml::node* mn = net.get("mode")) {
      if (auto m = StringNode(*mn, "network.mode")) {
        if (*m == "none") {
          policy_.network.mode = NetworkMode::kNone;
        } else if (*m == "loopback") {
          policy_.network.mode = NetworkMode::kLoopback;
        } else if (*m == "allowlist") {
          policy_.network.mode = NetworkMode::kAllowlist;
        } else if (*m == "lossy") {
          policy_.network.mode = NetworkMode::kLossyEgress;
        } else {
          Err(*mn, "network.mode",
              "expected \"none\", \"loopback\", \"allowlist\" or \"lossy\", got " + Quote(*m));
        }
        Record(*mn, "network.mode");
      }
    }
    if (const toml::array* allow = Array(net, "network", "allow")) {
      // An empty list says nothing; a non-empty one is checked against mode.
      if (!allow->empty()) Record(*net.get("allow"), "network.allow");
      for (size_t i = 0; i < allow->size(); ++i) {
        std::string k = "network.allow[" + std::to_string(i) + "]";
        auto s = StringNode((*allow)[i], k);
        if (!s) continue;
        auto ep = ParseEndpoint(*s);
        if (!ep.ok()) {
          Err((*allow)[i], k, ep.why());
          continue;
        }
        policy_.network.allow.push_back(ep.value());
      }
    }
    if (const toml::node* tn = net.get("lossy_tag")) {
      if (auto tag = StringNode(*tn, "network.lossy_tag")) {
        if (!ValidTag(*tag)) {
          Err(*tn, "network.lossy_tag", "expected 1-64 characters of [A-Za-z0-9_.:-], got " + Quote(*tag));
        } else {
          policy_.network.lossy_tag = *tag;
          Record(*tn, "network.lossy_tag");
        }
      }
    }
  }

  // ---- [resources] ----
  void ResourcesSection(const toml::table& r) {
    const char* p = "resources";
    CheckKeys(r, p, {"memory", "pids", "cpu", "cpu_weight", "disk", "timeout", "stdout_cap",
                     "stderr_cap", "nofile"});
    Resources& res = policy_.resources;
    if (auto v = Size(r, p, "memory", 4ULL << 20)) res.memory_bytes = *v;
    if (auto v = Int(r, p, "pids", 1, 4194304)) res.pids = static_cast<uint32_t>(*v);
    if (auto v = Int(r, p, "cpu_weight", 1, 10000)) res.cpu_weight = static_cast<uint32_t>(*v);
    if (auto v = Size(r, p, "disk", 1ULL << 20)) res.upper_disk_bytes = *v;
    if (auto v = Size(r, p, "stdout_cap", 1)) res.stdout_cap = *v;
    if (auto v = Size(r, p, "stderr_cap", 1)) res.stderr_cap = *v;
    if (auto v = Int(r, p, "nofile", 16, 1 << 20)) res.nofile = static_cast<uint64_t>(*v);
    if (const toml::node* cn = r.get("cpu")) Cpu(*cn);
    if (const toml::node* tn = r.get("timeout")) {
      if (auto s = StringNode(*tn, "resources.timeout")) {
        auto d = ParseDurationMs(*s);
        constexpr uint64_t kWeek = 7ULL * 24 * 3600 * 1000;
        if (!d.ok()) {
          Err(*tn, "resources.timeout", d.why());
        } else if (d.value() < 1 || d.value() > kWeek) {
          Err(*tn, "resources.timeout", "expected a duration between 1ms and 7 days, got " + Quote(*s));
        } else {
          res.action_timeout_ms = static_cast<uint32_t>(d.value());
          Record(*tn, "resources.timeout");
        }
      }
    }
  }

  // CPUs as a number (1, 0.5) or millicpus as a string ("1500m").
  void Cpu(const toml::node& n) {
    const std::string k = "resources.cpu";
    double cpus = -1;
    if (n.is_integer()) {
      cpus = static_cast<double>(n.as_integer()->get());
    } else if (n.is_floating_point()) {
      cpus = n.as_floating_point()->get();
    } else if (n.is_string()) {
      const std::string& s = n.as_string()->get();
      if (s.size() >= 2 && s.back() == 'm' && s.size() <= 9 &&
          std::all_of(s.begin(), s.end() - 1, [](char c) { return c >= '0' && c <= '9'; })) {
        cpus = std::stod(s.substr(0, s.size() - 1)) / 1000.0;
      } else {
        Err(n, k, "expected a number of CPUs like 1.5 or millicpus like \"1500m\", got " + Quote(s));
        return;
      }
    } else {
      Err(n, k, std::string("expected a number of CPUs like 1.5, got ") + TypeName(n.type()));
      return;
    }
    if (!std::isfinite(cpus) || cpus < 0.01 || cpus > 1024) {
      Err(n, k, "expected between 0.01 and 1024 CPUs");
      return;
    }
    policy_.resources.cpu_millis = static_cast<uint32_t>(std::lround(cpus * 1000));
    Record(n, k);
  }

  // ---- [speculation] ----
  void SpeculationSection(const toml::table& s) {
    const char* p = "speculation";
    CheckKeys(s, p, {"max_branches", "max_concurrent", "promote_nondeterministic", "normalisations"});
    Speculation& sp = policy_.speculation;
    if (auto v = Int(s, p, "max_branches", 1, 1024)) sp.max_branches_per_session = static_cast<uint32_t>(*v);
    if (auto v = Int(s, p, "max_concurrent", 1, 1024)) sp.max_concurrent_branches = static_cast<uint32_t>(*v);
    if (auto v = Bool(s, p, "promote_nondeterministic")) sp.promote_nondeterministic = *v;
    if (const toml::array* arr = Array(s, p, "normalisations")) {
      sp.normalisations.clear();
      for (size_t i = 0; i < arr->size(); ++i) {
        std::string k = "speculation.normalisations[" + std::to_string(i) + "]";
        auto v = StringNode((*arr)[i], k);
        if (!v) continue;
        if (std::find(kNormalisations.begin(), kNormalisations.end(), *v) == kNormalisations.end()) {
          Err((*arr)[i], k,
              "expected \"collapse_whitespace\" or \"strip_trailing_semicolon\", got " + Quote(*v));
          continue;
        }
        if (std::find(sp.normalisations.begin(), sp.normalisations.end(), *v) == sp.normalisations.end()) {
          sp.normalisations.push_back(*v);
        }
      }
    }
  }

  // ---- [promotion] ----
  void PromotionSection(const toml::table& t) {
    const char* p = "promotion";
    CheckKeys(t, p, {"target", "allow_setuid", "allow_file_caps", "allow_xattrs", "allow_devices"});
    Promotion& pr = policy_.promotion;
    if (const toml::node* tn = t.get("target")) {
      if (auto s = StringNode(*tn, "promotion.target")) {
        if (*s == "layer") {
          pr.target = PromoteTarget::kLayer;
        } else if (*s == "base") {
          pr.target = PromoteTarget::kBase;
        } else {
          Err(*tn, "promotion.target", "expected \"layer\" or \"base\", got " + Quote(*s));
        }
      }
    }
    if (auto v = Bool(t, p, "allow_setuid")) pr.allow_setuid = *v;
    if (auto v = Bool(t, p, "allow_file_caps")) pr.allow_file_caps = *v;
    if (auto v = Bool(t, p, "allow_xattrs")) pr.allow_xattrs = *v;
    if (auto v = Bool(t, p, "allow_devices")) pr.allow_devices = *v;
  }

  // ---- [sandbox] ----
  void SandboxSection(const toml::table& t) {
    CheckKeys(t, "sandbox", {"hostname", "capabilities", "user_namespace"});
    if (auto v = Bool(t, "sandbox", "user_namespace")) policy_.sandbox.user_namespace = *v;
    if (const toml::node* hn = t.get("hostname")) {
      if (auto h = StringNode(*hn, "sandbox.hostname")) {
        bool ok = !h->empty() && h->size() <= 64 && h->front() != '-' &&
                  std::all_of(h->begin(), h->end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                           c == '-' || c == '.';
                  });
        if (ok) {
          policy_.sandbox.hostname = *h;
        } else {
          Err(*hn, "sandbox.hostname", "expected a host name of 1-64 letters, digits, '-' and '.', got " +
                                           Quote(*h));
        }
      }
    }
    if (const toml::array* caps = Array(t, "sandbox", "capabilities")) {
      policy_.sandbox.capabilities.clear();
      for (size_t i = 0; i < caps->size(); ++i) {
        std::string k = "sandbox.capabilities[" + std::to_string(i) + "]";
        auto s = StringNode((*caps)[i], k);
        if (!s) continue;
        auto c = ParseCapability(*s);
        if (!c.ok()) {
          Err((*caps)[i], k, c.why());
          continue;
        }
        policy_.sandbox.capabilities.push_back(c.value());
      }
    }
  }

  const std::string& file_;
  Policy& policy_;
  Provenance& prov_;
  PolicyErrors& errors_;
  // Rules seen in this document, for duplicate/contradiction checks.
  std::map<std::string, std::pair<PathMode, Origin>> seen_paths_;
  std::map<std::string, std::pair<SyscallAction, Origin>> seen_syscalls_;
};

}  // namespace

void ApplyDocument(const toml::table& root, const std::string& file, Policy& policy,
                   Provenance& prov, PolicyErrors& errors) {
  DocumentReader(file, policy, prov, errors).Read(root);
}

}  // namespace specula::policy::internal
