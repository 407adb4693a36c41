// The policy loader: TOML syntax (toml++, whose exceptions stop here), the
// `extends` chain with cycle detection, diagnostics, and where shipped
// policies live. Key-by-key reading is in policy_toml.cpp, cross-section
// checks in policy_validate.cpp.
#include "policies/policy_parser.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>

#include "common/unique_fd.h"
#include "policies/policy_internal.h"

namespace specula::policy {
namespace {

constexpr size_t kMaxPolicyBytes = 1 << 20;  // policy files are small; refuse anything else
constexpr size_t kMaxExtendsDepth = 16;

Result<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Error::FromErrno("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::FromErrno("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error(Code::kInvalidArgument, path + ": not a regular file");
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPolicyBytes) {
      return Error(Code::kInvalidArgument, path + ": larger than 1 MiB, not a policy file");
    }
  }
  return text;
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) != nullptr) return buf;
  return path;
}

std::string DirOf(std::string_view file) {
  size_t slash = file.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(file.substr(0, slash));
}

// "policies/site.toml" -> "site": the name of a policy file that sets none.
std::string Stem(std::string_view file) {
  size_t slash = file.rfind('/');
  std::string_view base = slash == std::string_view::npos ? file : file.substr(slash + 1);
  if (base.size() > 5 && base.substr(base.size() - 5) == ".toml") base.remove_suffix(5);
  std::string out;
  for (char c : base) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    out += ok ? c : '_';
  }
  return out.empty() ? "policy" : out.substr(0, 64);
}

struct LoadContext {
  const ExtendsResolver& resolver;
  PolicyErrors& errors;
  std::vector<std::string> stack;  // canonical names of the files being read
};

// Parses `text` (named `name`) and everything it extends into `out`.
void ParseLayer(std::string_view text, const std::string& name, const std::string& canonical,
                LoadContext& ctx, Policy& out, internal::Provenance& prov) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    ctx.errors.Add(Diagnostic{name, e.source().begin.line, e.source().begin.column, "",
                              std::string(e.description())});
    return;
  }
  Policy base;  // no extends: the struct's defaults, with no rules
  internal::Provenance base_prov;
  ctx.stack.push_back(canonical);
  if (const toml::node* ext = root.get("extends"); ext != nullptr && ext->is_string()) {
    const std::string& ref = ext->as_string()->get();
    internal::Origin at{name, ext->source().begin.line, ext->source().begin.column, "extends"};
    if (ctx.stack.size() >= kMaxExtendsDepth) {
      internal::AddAt(ctx.errors, &at, "extends", "extends chain is deeper than 16 files");
    } else if (auto src = ctx.resolver(ref, name); !src.ok()) {
      internal::AddAt(ctx.errors, &at, "extends", "cannot load \"" + ref + "\": " + src.error().message());
    } else if (std::find(ctx.stack.begin(), ctx.stack.end(), src->name) != ctx.stack.end()) {
      std::string chain;
      for (const auto& s : ctx.stack) chain += s + " -> ";
      internal::AddAt(ctx.errors, &at, "extends", "extends cycle: " + chain + src->name);
    } else {
      ParseLayer(src->text, src->name, src->name, ctx, base, base_prov);
      base.extends.insert(base.extends.begin(), src->name);
    }
  }
  ctx.stack.pop_back();
  out = std::move(base);
  prov = std::move(base_prov);
  out.name = Stem(name);
  internal::ApplyDocument(root, name, out, prov, ctx.errors);
}

}  // namespace

namespace internal {

std::string Origin::Where() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

void AddAt(PolicyErrors& errors, const Origin* origin, std::string key, std::string message) {
  Diagnostic d;
  if (origin != nullptr) {
    d.file = origin->file;
    d.line = origin->line;
    d.column = origin->column;
  }
  d.key = std::move(key);
  d.message = std::move(message);
  errors.Add(std::move(d));
}

}  // namespace internal

std::string Diagnostic::ToString() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line != 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
  }
  if (!key.empty()) out += key + ": ";
  return out + message;
}

void PolicyErrors::Sort() {
  std::map<std::string, size_t> rank;  // files in order of first appearance
  for (const auto& d : items_) rank.emplace(d.file, rank.size());
  std::stable_sort(items_.begin(), items_.end(), [&](const Diagnostic& a, const Diagnostic& b) {
    size_t ra = rank[a.file], rb = rank[b.file];
    if (ra != rb) return ra < rb;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
}

std::string PolicyErrors::ToString() const {
  std::string out;
  for (const auto& d : items_) out += d.ToString() + "\n";
  return out;
}

// The package's policies (packaging/debian, cmake/Packaging.cmake): fixed,
// whatever prefix the binary was configured with, since the package is
// built from an ordinary build tree.
constexpr const char* kPolicySysconfDir = "/etc/specula/policies";

std::vector<std::string> ShippedPolicyDirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("SPECULA_POLICY_DIR"); env != nullptr && *env != '\0') {
    dirs.emplace_back(env);
  }
  dirs.emplace_back(kPolicySysconfDir);
#ifdef SPECULA_POLICY_SOURCE_DIR
  dirs.emplace_back(SPECULA_POLICY_SOURCE_DIR);
#endif
#ifdef SPECULA_POLICY_INSTALL_DIR
  dirs.emplace_back(SPECULA_POLICY_INSTALL_DIR);
#endif
  return dirs;
}

std::string FindShippedPolicy(std::string_view name) {
  // A plain file name only: a shipped name must not walk out of the directory.
  if (name.empty() || name[0] == '.' || name.size() > 128) return "";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return "";
  }
  std::string file(name);
  if (file.size() < 5 || file.substr(file.size() - 5) != ".toml") file += ".toml";
  for (const std::string& dir : ShippedPolicyDirs()) {
    std::string path = dir + "/" + file;
    if (IsRegularFile(path)) return path;
  }
  return "";
}

ExtendsResolver ShippedResolver() {
  return [](std::string_view ref, std::string_view) -> Result<PolicySource> {
    std::string path = FindShippedPolicy(ref);
    if (path.empty()) {
      return Error(Code::kNotFound, "no shipped policy named \"" + std::string(ref) + "\"");
    }
    SPECULA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
    return PolicySource{Canonical(path), std::move(text)};
  };
}

ExtendsResolver FileResolver() {
  return [](std::string_view ref, std::string_view from) -> Result<PolicySource> {
    if (ref.empty()) return Error(Code::kInvalidArgument, "empty name");
    std::string candidate =
        ref[0] == '/' ? std::string(ref) : DirOf(from) + "/" + std::string(ref);
    if (IsRegularFile(candidate)) {
      SPECULA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(candidate));
      return PolicySource{Canonical(candidate), std::move(text)};
    }
    if (ref.find('/') == std::string_view::npos) return ShippedResolver()(ref, from);
    return Error(Code::kNotFound, candidate + ": no such file");
  };
}

Result<Policy> ParsePolicy(std::string_view text, std::string_view source_name,
                           const ExtendsResolver& resolver, PolicyErrors* errors_out) {
  try {
    PolicyErrors errors;
    if (text.size() > kMaxPolicyBytes) {
      errors.Add(Diagnostic{std::string(source_name), 0, 0, "", "larger than 1 MiB, not a policy"});
      if (errors_out != nullptr) *errors_out = errors;
      return Error(Code::kInvalidArgument, "policy " + std::string(source_name) + ": larger than 1 MiB");
    }
    LoadContext ctx{resolver, errors, {}};
    Policy policy;
    internal::Provenance prov;
    std::string name(source_name);
    ParseLayer(text, name, Canonical(name), ctx, policy, prov);
    policy.source = name;
    internal::ValidateMerged(policy, prov, errors);
    errors.Sort();
    if (errors_out != nullptr) *errors_out = errors;
    if (!errors.empty()) {
      std::string msg = "policy " + name + ": " + std::to_string(errors.size()) +
                        (errors.size() == 1 ? " error:\n" : " errors:\n") + errors.ToString();
      msg.pop_back();  // the last newline
      return Error(Code::kInvalidArgument, std::move(msg))
          .WithHint("fix the policy file; `specula policy check FILE` lists every problem (docs/policy.md)");
    }
    return policy;
  } catch (const std::exception& e) {  // bad_alloc and the like: nothing may escape
    if (errors_out != nullptr) {
      *errors_out = PolicyErrors();
      errors_out->Add(Diagnostic{std::string(source_name), 0, 0, "", e.what()});
    }
    return Error(Code::kInternal, "policy " + std::string(source_name) + ": " + e.what());
  }
}

Result<Policy> LoadPolicyFile(const std::string& path, PolicyErrors* errors) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) {
    if (errors != nullptr) {
      *errors = PolicyErrors();
      errors->Add(Diagnostic{path, 0, 0, "", text.error().message()});
    }
    return std::move(text).error().Context("load policy");
  }
  return ParsePolicy(*text, path, FileResolver(), errors);
}

}  // namespace specula::policy
