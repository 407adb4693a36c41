#include "runtime/apply/upper_scan.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <string>

namespace specula::apply {
namespace {

constexpr const char* kOverlayPrefix = "trusted.overlay.";

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The branch shapes the upper at will. The scan and everything that walks
// its plan afterwards (staging, journal records, revert checks) recurse
// once per level and keep an fd and a path per level, so the tree must be
// bounded before anything is applied: a directory deeper than
// kMaxUpperDepth, or a path the base could not even name (PATH_MAX; openat2
// of its parent would fail half way through the apply), is refused here.
Status CheckShape(const std::string& rel, int depth, bool is_dir) {
  auto shown = [&] { return rel.size() > 200 ? rel.substr(0, 200) + "..." : rel; };
  if (is_dir && depth > kMaxUpperDepth) {
    return Error(Code::kInvalidArgument, "upper nests directories deeper than " + std::to_string(kMaxUpperDepth) +
                                             " levels, at " + shown())
        .WithHint("a promote to the base applies at most " + std::to_string(kMaxUpperDepth) +
                  " nested directories; discard the branch, or flatten the tree in it first");
  }
  if (rel.size() >= PATH_MAX) {
    return Error(Code::kInvalidArgument, "upper path longer than PATH_MAX (" + std::to_string(PATH_MAX) +
                                             " bytes): " + shown())
        .WithHint("a promote to the base applies only paths the base can name; shorten them in the branch");
  }
  return Status::Ok();
}

class Scanner {
 public:
  explicit Scanner(const ScanOptions& opts) : opts_(opts) {}

  // `depth`: how many components `rel` has (0: the upper's root).
  Status ScanMerged(int upper_dir, int base_dir, const std::string& rel, int depth);
  Plan TakePlan() { return std::move(plan_); }

 private:
  // nullopt: the entry is rejected (noted in the report) or is a whiteout
  // inside a new directory (hides nothing).
  Result<std::optional<Node>> BuildNode(int upper_dir, const std::string& name,
                                        const struct stat& st, const std::string& rel, int depth);
  Result<UniqueFd> OpenUpperChild(int upper_dir, const std::string& name, const struct stat& st,
                                  int flags);
  Result<bool> IsWhiteout(int upper_dir, const std::string& name, const struct stat& st);
  std::vector<Xattr> FilterXattrs(std::vector<Xattr> in, const std::string& rel);
  uint32_t StripMode(uint32_t mode, bool is_dir, const std::string& rel);
  void Reject(const std::string& rel, std::string why) { plan_.report.rejected.push_back({rel, std::move(why)}); }
  bool IsProtected(const struct stat& st) const {
    FileId id = FileId::Of(st);
    return std::find(opts_.protected_ids.begin(), opts_.protected_ids.end(), id) !=
           opts_.protected_ids.end();
  }

  const ScanOptions& opts_;
  Plan plan_;
  dev_t base_dev_ = 0;  // the base root's filesystem (set by the first ScanMerged)
};

Result<UniqueFd> Scanner::OpenUpperChild(int upper_dir, const std::string& name,
                                         const struct stat& st, int flags) {
  int fd = ::openat(upper_dir, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return Error::FromErrno("open upper " + name);
  UniqueFd f(fd);
  struct stat now {};
  if (::fstat(f.get(), &now) != 0) return Error::FromErrno("fstat upper " + name);
  // The branch is frozen; a change between lstat and open means someone else
  // is writing the upper: refuse rather than guess.
  if (FileId::Of(now) != FileId::Of(st) || (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
    return Error(Code::kAborted, "upper entry " + name + " changed during the scan");
  }
  return f;
}

Result<bool> Scanner::IsWhiteout(int upper_dir, const std::string& name, const struct stat& st) {
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return true;
  // Newer kernels/tools may use an "xattr whiteout": an empty regular file
  // marked trusted.overlay.whiteout.
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd f, OpenUpperChild(upper_dir, name, st, O_RDONLY));
    SPECULA_ASSIGN_OR_RETURN(auto v, GetXattr(f.get(), "trusted.overlay.whiteout"));
    return v.has_value();
  }
  return false;
}

std::vector<Xattr> Scanner::FilterXattrs(std::vector<Xattr> in, const std::string& rel) {
  const auto& p = opts_.promotion;
  std::vector<Xattr> kept;
  for (auto& x : in) {
    if (StartsWith(x.name, kOverlayPrefix)) continue;  // overlayfs bookkeeping, never data
    bool keep;
    if (StartsWith(x.name, "user.") || x.name == "system.posix_acl_access" ||
        x.name == "system.posix_acl_default") {
      keep = true;  // ordinary data and permissions
    } else if (x.name == "security.capability") {
      keep = p.allow_file_caps;
    } else {
      keep = p.allow_xattrs;  // trusted.*, security.*, anything else
    }
    if (keep) kept.push_back(std::move(x));
    else plan_.report.stripped.push_back({rel, "xattr " + x.name});
  }
  return kept;
}

uint32_t Scanner::StripMode(uint32_t mode, bool is_dir, const std::string& rel) {
  uint32_t perm = mode & 07777;
  if (opts_.promotion.allow_setuid) return perm;
  // setgid on a directory only means "inherit the group": not a privilege.
  uint32_t bad = is_dir ? S_ISUID : (S_ISUID | S_ISGID);
  if (perm & bad) {
    plan_.report.stripped.push_back({rel, (perm & S_ISUID) ? "setuid bit" : "setgid bit"});
    perm &= ~bad;
  }
  return perm;
}

Result<std::optional<Node>> Scanner::BuildNode(int upper_dir, const std::string& name,
                                               const struct stat& st, const std::string& rel, int depth) {
  SPECULA_TRY(CheckShape(rel, depth, S_ISDIR(st.st_mode)));
  Node n;
  n.name = name;
  n.rel = rel;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.atime = st.st_atim;
  n.mtime = st.st_mtim;
  n.upper_id = FileId::Of(st);
  n.fmt = st.st_mode & S_IFMT;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: {
      n.type = Node::Type::kFile;
      SPECULA_ASSIGN_OR_RETURN(UniqueFd f, OpenUpperChild(upper_dir, name, st, O_RDONLY));
      SPECULA_ASSIGN_OR_RETURN(auto xattrs, ReadXattrs(f.get()));
      for (const auto& x : xattrs) {
        if (x.name == "trusted.overlay.metacopy") {
          // Data lives in a lower layer; copying this file would lose it.
          return Error(Code::kFailedPrecondition, "metacopy upper file " + rel)
              .WithHint("mount branch overlays with metacopy=off");
        }
      }
      n.xattrs = FilterXattrs(std::move(xattrs), rel);
      n.perm = StripMode(st.st_mode, false, rel);
      n.hardlinked = st.st_nlink > 1;
      return std::optional(std::move(n));
    }
    case S_IFDIR: {
      n.type = Node::Type::kDir;
      SPECULA_ASSIGN_OR_RETURN(UniqueFd d, OpenUpperChild(upper_dir, name, st, O_RDONLY | O_DIRECTORY));
      SPECULA_ASSIGN_OR_RETURN(auto xattrs, ReadXattrs(d.get()));
      for (const auto& x : xattrs) {
        if (x.name == "trusted.overlay.redirect") {
          return Error(Code::kFailedPrecondition, "redirected upper directory " + rel)
              .WithHint("mount branch overlays with redirect_dir=off");
        }
      }
      n.xattrs = FilterXattrs(std::move(xattrs), rel);
      n.perm = StripMode(st.st_mode, true, rel);
      SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(d.get()));
      for (const auto& cname : names) {
        SPECULA_ASSIGN_OR_RETURN(auto cst, LstatAt(d.get(), cname));
        if (!cst) return Error(Code::kAborted, "upper entry vanished during the scan: " + JoinRel(rel, cname));
        // A whiteout inside a directory that replaces the base one hides nothing.
        SPECULA_ASSIGN_OR_RETURN(bool wh, IsWhiteout(d.get(), cname, *cst));
        if (wh) continue;
        SPECULA_ASSIGN_OR_RETURN(auto child, BuildNode(d.get(), cname, *cst, JoinRel(rel, cname), depth + 1));
        if (child) n.children.push_back(std::move(*child));
      }
      return std::optional(std::move(n));
    }
    case S_IFLNK: {
      n.type = Node::Type::kSymlink;
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t len = ::readlinkat(upper_dir, name.c_str(), target.data(), target.size());
      if (len < 0) return Error::FromErrno("readlink upper " + rel);
      if (static_cast<size_t>(len) >= target.size()) {
        return Error(Code::kAborted, "upper symlink changed during the scan: " + rel);
      }
      target.resize(static_cast<size_t>(len));
      n.link_target = std::move(target);  // data only: never followed by apply
      return std::optional(std::move(n));
    }
    case S_IFCHR:
    case S_IFBLK:
      if (!opts_.promotion.allow_devices) {
        Reject(rel, "device node (policy promotion.allow_devices is off)");
        return std::optional<Node>();
      }
      break;
    case S_IFIFO:
    case S_IFSOCK:
      if (!opts_.allow_fifos_and_sockets) {
        Reject(rel, S_ISFIFO(st.st_mode) ? "fifo" : "socket");
        return std::optional<Node>();
      }
      break;
    default:
      Reject(rel, "unknown file type");
      return std::optional<Node>();
  }
  n.type = Node::Type::kSpecial;
  n.rdev = st.st_rdev;
  n.perm = StripMode(st.st_mode, false, rel);
  return std::optional(std::move(n));
}

MetaRec MetaOf(const struct stat& st, uint32_t perm) {
  return {perm, st.st_uid, st.st_gid, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
}

Status Scanner::ScanMerged(int upper_dir, int base_dir, const std::string& rel, int depth) {
  struct stat here {};
  if (::fstat(base_dir, &here) != 0) return Error::FromErrno("fstat base " + (rel.empty() ? "." : rel));
  if (rel.empty()) base_dev_ = here.st_dev;
  SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(upper_dir));
  for (const auto& name : names) {
    std::string child_rel = JoinRel(rel, name);
    SPECULA_ASSIGN_OR_RETURN(auto ust, LstatAt(upper_dir, name));
    if (!ust) return Error(Code::kAborted, "upper entry vanished during the scan: " + child_rel);
    SPECULA_TRY(CheckShape(child_rel, depth + 1, S_ISDIR(ust->st_mode)));
    SPECULA_ASSIGN_OR_RETURN(auto bst, LstatAt(base_dir, name));
    // The journal's and the upper's own directories and their ancestors may
    // be merged into (a branch that writes /var/log/x over a base "/" whose
    // journal is under /var/lib), never deleted or replaced: checked at
    // every branch below that does not recurse into a merged directory.
    bool protected_entry = bst && IsProtected(*bst);
    auto refuse_protected = [&]() {
      return Error(Code::kPermissionDenied,
                   "upper would replace " + child_rel + ", which holds the journal or the upper itself");
    };
    SPECULA_ASSIGN_OR_RETURN(bool whiteout, IsWhiteout(upper_dir, name, *ust));
    if (protected_entry && (whiteout || !S_ISDIR(ust->st_mode) || !S_ISDIR(bst->st_mode))) {
      return refuse_protected();
    }
    if (whiteout) {
      if (bst) {
        plan_.ops.push_back({.kind = OpKind::kDelete, .rel = child_rel, .base_exists = true});
        ++plan_.report.deleted;
      }
      continue;
    }
    if (S_ISDIR(ust->st_mode) && bst && S_ISDIR(bst->st_mode)) {
      SPECULA_ASSIGN_OR_RETURN(UniqueFd ud, OpenUpperChild(upper_dir, name, *ust, O_RDONLY | O_DIRECTORY));
      SPECULA_ASSIGN_OR_RETURN(auto opaque, GetXattr(ud.get(), "trusted.overlay.opaque"));
      SPECULA_ASSIGN_OR_RETURN(auto redirect, GetXattr(ud.get(), "trusted.overlay.redirect"));
      if (redirect) {
        return Error(Code::kFailedPrecondition, "redirected upper directory " + child_rel)
            .WithHint("mount branch overlays with redirect_dir=off");
      }
      if (!opaque || *opaque != "y") {
        // Merged directory: keep the base dir, set its attributes, recurse.
        int bfd = ::openat(base_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0) return Error::FromErrno("open base " + child_rel);
        UniqueFd bd(bfd);
        struct stat bnow {};
        if (::fstat(bd.get(), &bnow) != 0) return Error::FromErrno("fstat base " + child_rel);
        if (FileId::Of(bnow) == opts_.journal_dir_id) {
          return Error(Code::kPermissionDenied, "upper writes into the journal directory " + child_rel);
        }
        PlannedOp op{.kind = OpKind::kMeta, .rel = child_rel, .base_exists = true};
        op.old_meta = MetaOf(bnow, bnow.st_mode & 07777);
        op.new_meta = MetaOf(*ust, StripMode(ust->st_mode, true, child_rel));
        if (op.old_meta.mode != op.new_meta.mode || op.old_meta.uid != op.new_meta.uid ||
            op.old_meta.gid != op.new_meta.gid || op.old_meta.mtime_sec != op.new_meta.mtime_sec ||
            op.old_meta.mtime_nsec != op.new_meta.mtime_nsec) {
          // Inside the branch a mount point of the base is a plain directory
          // of the base's own filesystem; its attributes are the mounted
          // filesystem's root, which a promote never changes (docs/promote.md),
          // and whose failure (read-only) would come after the commit point.
          // Below a mount point (ScanMerged went into it) likewise.
          if (bnow.st_dev != base_dev_) {
            return Error(Code::kFailedPrecondition,
                         child_rel + (bnow.st_dev != here.st_dev ? " is a mount point" : " is on another filesystem") +
                             "; a promote cannot change its owner, mode or times")
                .WithHint("leave the mount point's attributes alone in the branch, or change them on the host");
          }
          plan_.ops.push_back(std::move(op));
          ++plan_.report.dirs_updated;
        }
        SPECULA_TRY(ScanMerged(ud.get(), bd.get(), child_rel, depth + 1));
        continue;
      }
      // Opaque: the upper dir replaces the base dir wholesale (below).
      if (protected_entry) return refuse_protected();
    }
    SPECULA_ASSIGN_OR_RETURN(auto node, BuildNode(upper_dir, name, *ust, child_rel, depth + 1));
    if (!node) continue;  // rejected
    PlannedOp op{.kind = OpKind::kPut, .rel = child_rel, .base_exists = bst.has_value()};
    op.node = std::move(*node);
    plan_.ops.push_back(std::move(op));
    if (bst) ++plan_.report.changed;
    else ++plan_.report.added;
  }
  return Status::Ok();
}

}  // namespace

Result<Plan> ScanUpper(int upper_fd, int base_fd, const ScanOptions& opts) {
  Scanner s(opts);
  SPECULA_TRY_CTX(s.ScanMerged(upper_fd, base_fd, "", 0), "validate upper");
  return s.TakePlan();
}

}  // namespace specula::apply
