// DiffUpper: what an upper changes relative to its lower layers, for
// `specula diff`. Read-only; walks the upper and the layers with the same
// no-follow discipline as apply (the upper is untrusted, layers may hold
// whiteouts and opaque dirs themselves).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>

#include "common/spawn.h"
#include "runtime/apply/apply.h"
#include "runtime/apply/safe_fs.h"

namespace specula::apply {

const char* ToString(DiffKind k) {
  switch (k) {
    case DiffKind::kAdded: return "added";
    case DiffKind::kChanged: return "changed";
    case DiffKind::kDeleted: return "deleted";
  }
  return "?";
}

namespace {

bool IsCharWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

char TypeChar(mode_t m) {
  if (S_ISREG(m)) return 'f';
  if (S_ISDIR(m)) return 'd';
  if (S_ISLNK(m)) return 'l';
  return 's';
}

Result<bool> HasXattrValue(int dir_fd, const std::string& name, int flags, const char* xattr,
                           const char* want) {
  int fd = ::openat(dir_fd, name.c_str(), flags | O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return Error::FromErrno("open " + name);
  UniqueFd f(fd);
  SPECULA_ASSIGN_OR_RETURN(auto v, GetXattr(f.get(), xattr));
  return v.has_value() && (want == nullptr || *v == want);
}

Result<bool> IsWhiteout(int dir_fd, const std::string& name, const struct stat& st) {
  if (IsCharWhiteout(st)) return true;
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    return HasXattrValue(dir_fd, name, 0, "trusted.overlay.whiteout", nullptr);
  }
  return false;
}

struct LowerHit {
  int layer_fd;
  struct stat st;
};

class Differ {
 public:
  Differ(int upper_fd, std::vector<UniqueFd> layers, const DiffOptions& opts)
      : upper_fd_(upper_fd), layers_(std::move(layers)), opts_(opts) {}

  // `depth`: how many components `rel` has (0: the upper's root).
  Status Walk(int upper_dir, const std::string& rel, bool lower_visible, bool opaque, int depth);
  UpperDiff Take() { return std::move(diff_); }

 private:
  Result<std::optional<LowerHit>> Lookup(const std::string& rel);
  Result<std::set<std::string>> LowerNames(const std::string& rel);
  Result<std::optional<std::string>> ReadSmall(int root_fd, const std::string& rel);
  Status AddFileEntry(DiffEntry e, const struct stat& ust, const std::optional<LowerHit>& lower);

  int upper_fd_;
  std::vector<UniqueFd> layers_;
  const DiffOptions& opts_;
  UpperDiff diff_;
};

// The object a path resolves to in the lower layers (topmost first), with
// overlay semantics: a whiteout or a non-directory ancestor hides everything
// below, an opaque ancestor hides the layers under it.
Result<std::optional<LowerHit>> Differ::Lookup(const std::string& rel) {
  auto [parent_rel, last] = SplitParent(rel);
  std::vector<std::string> comps;
  for (size_t s = 0; !parent_rel.empty();) {
    size_t e = parent_rel.find('/', s);
    comps.push_back(parent_rel.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  for (const auto& layer : layers_) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirBeneath(layer.get(), ""));
    bool present = true, opaque_here = false;
    for (const auto& c : comps) {
      SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(fd.get(), c));
      if (!st) { present = false; break; }
      SPECULA_ASSIGN_OR_RETURN(bool wh, IsWhiteout(fd.get(), c, *st));
      if (wh || !S_ISDIR(st->st_mode)) return std::optional<LowerHit>();
      SPECULA_ASSIGN_OR_RETURN(bool op, HasXattrValue(fd.get(), c, O_DIRECTORY, "trusted.overlay.opaque", "y"));
      opaque_here = opaque_here || op;
      int next = ::openat(fd.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) return Error::FromErrno("open lower " + c);
      fd.Reset(next);
    }
    if (present) {
      SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(fd.get(), last));
      if (st) {
        SPECULA_ASSIGN_OR_RETURN(bool wh, IsWhiteout(fd.get(), last, *st));
        if (wh) return std::optional<LowerHit>();
        return std::optional(LowerHit{layer.get(), *st});
      }
    }
    if (opaque_here) break;
  }
  return std::optional<LowerHit>();
}

Result<std::set<std::string>> Differ::LowerNames(const std::string& rel) {
  std::set<std::string> names;
  for (const auto& layer : layers_) {
    auto d = OpenDirBeneath(layer.get(), rel);
    if (!d.ok()) continue;
    SPECULA_ASSIGN_OR_RETURN(auto list, ListDirAt(d->get()));
    names.insert(list.begin(), list.end());
    SPECULA_ASSIGN_OR_RETURN(bool opaque, XattrEquals(d->get(), "trusted.overlay.opaque", "y"));
    if (opaque) break;
  }
  return names;
}

Result<std::optional<std::string>> Differ::ReadSmall(int root_fd, const std::string& rel) {
  SPECULA_ASSIGN_OR_RETURN(UniqueFd f, OpenBeneath(root_fd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK));
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + rel);
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > opts_.max_text_bytes) return std::optional<std::string>();
  }
  return std::optional(std::move(data));
}

// `diff -u` of two texts, through copies in a private temp dir so the tool
// never opens a path inside the (untrusted) upper.
Result<std::string> UnifiedDiff(const std::string& rel, const std::string& old_text, bool old_exists,
                                const std::string& new_text) {
  std::string tmpl = "/tmp/specula-diff-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Error::FromErrno("mkdtemp");
  std::string a = tmpl + "/a", b = tmpl + "/b";
  auto write = [](const std::string& path, const std::string& text) -> Status {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Error::FromErrno("create " + path);
    UniqueFd f(fd);
    if (::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      return Error::FromErrno("write " + path);
    }
    return Status::Ok();
  };
  Status st = write(a, old_text);
  if (st.ok()) st = write(b, new_text);
  Result<SpawnResult> r = Error(Code::kInternal, "not run");
  if (st.ok()) {
    r = Spawn({.argv = {"diff", "-u", "--label", old_exists ? "a/" + rel : "/dev/null", "--label",
                        "b/" + rel, a, b},
               .clear_env = true,
               .timeout = std::chrono::milliseconds(10000)});
  }
  ::unlink(a.c_str());
  ::unlink(b.c_str());
  ::rmdir(tmpl.c_str());
  SPECULA_TRY(st);
  if (!r.ok()) return std::move(r).error();
  if (r->exit_code != 0 && r->exit_code != 1) {
    return Error(Code::kInternal, "diff -u " + rel + " failed: " + ErrorLines(r->err));
  }
  return r->out;
}

Status Differ::AddFileEntry(DiffEntry e, const struct stat& ust, const std::optional<LowerHit>& lower) {
  const struct stat* l = lower ? &lower->st : nullptr;
  bool same_type = l != nullptr && (l->st_mode & S_IFMT) == (ust.st_mode & S_IFMT);
  auto [parent_rel, name] = SplitParent(e.path);
  std::optional<std::string> new_text, old_text;
  if (!same_type) {
    e.content_changed = true;
  } else if (S_ISLNK(ust.st_mode)) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd up, OpenDirBeneath(upper_fd_, parent_rel));
    SPECULA_ASSIGN_OR_RETURN(UniqueFd lo, OpenDirBeneath(lower->layer_fd, parent_rel));
    char t1[4096], t2[4096];
    ssize_t n1 = ::readlinkat(up.get(), name.c_str(), t1, sizeof(t1));
    ssize_t n2 = ::readlinkat(lo.get(), name.c_str(), t2, sizeof(t2));
    e.content_changed = n1 < 0 || n2 < 0 || n1 != n2 || std::string(t1, static_cast<size_t>(n1)) !=
                                                          std::string(t2, static_cast<size_t>(n2));
  } else if (S_ISREG(ust.st_mode)) {
    e.content_changed = true;  // unless proven equal below
    if (l->st_size == ust.st_size) {
      SPECULA_ASSIGN_OR_RETURN(new_text, ReadSmall(upper_fd_, e.path));
      SPECULA_ASSIGN_OR_RETURN(old_text, ReadSmall(lower->layer_fd, e.path));
      if (new_text && old_text) e.content_changed = *new_text != *old_text;
    }
  } else {
    e.content_changed = l->st_rdev != ust.st_rdev;
  }
  bool regular_pair = S_ISREG(ust.st_mode) && (l == nullptr || S_ISREG(l->st_mode));
  if (opts_.unified && regular_pair && e.content_changed) {
    if (!new_text) { SPECULA_ASSIGN_OR_RETURN(new_text, ReadSmall(upper_fd_, e.path)); }
    if (l == nullptr) old_text = std::string();
    else if (!old_text) { SPECULA_ASSIGN_OR_RETURN(old_text, ReadSmall(lower->layer_fd, e.path)); }
    bool text = new_text && old_text && new_text->find('\0') == std::string::npos &&
                old_text->find('\0') == std::string::npos;
    if (text) {
      SPECULA_ASSIGN_OR_RETURN(e.unified_diff, UnifiedDiff(e.path, *old_text, l != nullptr, *new_text));
    }
  }
  diff_.entries.push_back(std::move(e));
  return Status::Ok();
}

Status Differ::Walk(int upper_dir, const std::string& rel, bool lower_visible, bool opaque, int depth) {
  // One stack frame and one fd per level, on a tree the branch shaped (it
  // may be live): bounded like a promote's scan (apply.h), with the same
  // error, instead of overflowing the daemon's stack.
  if (depth > kMaxUpperDepth) {
    return Error(Code::kInvalidArgument, "upper nests directories deeper than " + std::to_string(kMaxUpperDepth) +
                                             " levels, at " + rel.substr(0, 200) + (rel.size() > 200 ? "..." : ""))
        .WithHint("specula diff lists at most " + std::to_string(kMaxUpperDepth) + " nested directories");
  }
  SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(upper_dir));
  if (opaque && lower_visible) {
    // Whatever the lowers show here and the upper does not have is gone.
    SPECULA_ASSIGN_OR_RETURN(auto lower_names, LowerNames(rel));
    for (const auto& n : lower_names) {
      if (std::binary_search(names.begin(), names.end(), n)) continue;
      SPECULA_ASSIGN_OR_RETURN(auto hit, Lookup(JoinRel(rel, n)));
      if (hit) diff_.entries.push_back({JoinRel(rel, n), DiffKind::kDeleted, TypeChar(hit->st.st_mode)});
    }
  }
  for (const auto& name : names) {
    std::string child = JoinRel(rel, name);
    SPECULA_ASSIGN_OR_RETURN(auto ust, LstatAt(upper_dir, name));
    if (!ust) continue;
    std::optional<LowerHit> lower;
    if (lower_visible) { SPECULA_ASSIGN_OR_RETURN(lower, Lookup(child)); }
    SPECULA_ASSIGN_OR_RETURN(bool wh, IsWhiteout(upper_dir, name, *ust));
    if (wh) {
      if (lower) diff_.entries.push_back({child, DiffKind::kDeleted, TypeChar(lower->st.st_mode)});
      continue;
    }
    DiffEntry e{child, lower ? DiffKind::kChanged : DiffKind::kAdded, TypeChar(ust->st_mode)};
    if (S_ISDIR(ust->st_mode)) {
      int fd = ::openat(upper_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Error::FromErrno("open upper " + child);
      UniqueFd d(fd);
      SPECULA_ASSIGN_OR_RETURN(bool child_opaque, XattrEquals(d.get(), "trusted.overlay.opaque", "y"));
      bool lower_dir = lower && S_ISDIR(lower->st.st_mode);
      if (lower_dir) {
        const auto& l = lower->st;
        e.content_changed = false;
        if ((l.st_mode & 07777) != (ust->st_mode & 07777) || l.st_uid != ust->st_uid || l.st_gid != ust->st_gid) {
          diff_.entries.push_back(e);  // attributes of a kept directory
        }
      } else {
        diff_.entries.push_back(e);
      }
      SPECULA_TRY(Walk(d.get(), child, lower_dir, child_opaque, depth + 1));
      continue;
    }
    SPECULA_TRY(AddFileEntry(std::move(e), *ust, lower));
  }
  return Status::Ok();
}

}  // namespace

Result<UpperDiff> DiffUpper(const std::string& upper_dir, const std::vector<std::string>& lower_dirs,
                            const DiffOptions& opts) {
  SPECULA_ASSIGN_OR_RETURN(UniqueFd upper, OpenTrustedDir(upper_dir));
  std::vector<UniqueFd> layers;
  for (const auto& l : lower_dirs) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd fd, OpenTrustedDir(l));
    layers.push_back(std::move(fd));
  }
  Differ d(upper.get(), std::move(layers), opts);
  SPECULA_TRY_CTX(d.Walk(upper.get(), "", !lower_dirs.empty(), false, 0), "diff " + upper_dir);
  UpperDiff out = d.Take();
  std::sort(out.entries.begin(), out.entries.end(),
            [](const DiffEntry& a, const DiffEntry& b) { return a.path < b.path; });
  return out;
}

}  // namespace specula::apply
