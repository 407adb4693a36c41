#include "runtime/apply/op_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>

namespace specula::apply {
namespace {

// Ops come in path order, so consecutive ops mostly share a parent: keep the
// last one open instead of resolving it again.
class ParentCache {
 public:
  explicit ParentCache(int base_fd) : base_fd_(base_fd) {}
  Result<int> Get(const std::string& rel) {
    if (!fd_.valid() || rel != rel_) {
      fd_.Reset();
      SPECULA_ASSIGN_OR_RETURN(fd_, OpenDirBeneath(base_fd_, rel));
      SPECULA_TRY(CheckRegularFs(fd_.get(), rel));
      rel_ = rel;
    }
    return fd_.get();
  }

 private:
  int base_fd_;
  std::string rel_;
  UniqueFd fd_;
};

bool IsId(const std::optional<struct stat>& st, const FileId& id) {
  return st && FileId::Of(*st) == id;
}

Status SetMeta(int base_fd, const std::string& rel, const MetaRec& m, CrashCounter* steps) {
  SPECULA_ASSIGN_OR_RETURN(UniqueFd d, OpenDirBeneath(base_fd, rel));
  if (::fchown(d.get(), m.uid, m.gid) != 0) return Error::FromErrno("chown " + rel);
  if (::fchmod(d.get(), m.mode) != 0) return Error::FromErrno("chmod " + rel);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {m.mtime_sec, m.mtime_nsec}};
  if (::futimens(d.get(), ts) != 0) return Error::FromErrno("utimens " + rel);
  SPECULA_TRY(FsyncFd(d.get(), rel));
  steps->Step();
  return Status::Ok();
}

Status FsyncParents(const Runner& r, bool with_slots) {
  if (r.use_syncfs) {
    // The journal dir shares the base's filesystem (checked when staging).
    SPECULA_TRY(SyncFs(r.base_fd, "base"));
    r.steps->Step();
    return Status::Ok();
  }
  std::set<std::string> parents;
  for (const auto& op : r.journal->ops) {
    if (op.kind != OpKind::kMeta) parents.insert(SplitParent(op.path).first);
  }
  for (const auto& p : parents) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd d, OpenDirBeneath(r.base_fd, p));
    SPECULA_TRY(FsyncFd(d.get(), p.empty() ? "." : p));
  }
  if (with_slots) {
    SPECULA_TRY(FsyncFd(r.pre_fd, kPreDir));
    SPECULA_TRY(FsyncFd(r.trash_fd, kTrashDir));
  }
  r.steps->Step();
  return Status::Ok();
}

Status ForwardPut(const Runner& r, size_t i, const JournalOp& op, int parent, const std::string& name) {
  const std::string slot = SlotName(i);
  SPECULA_ASSIGN_OR_RETURN(auto n, LstatAt(parent, name));
  SPECULA_ASSIGN_OR_RETURN(auto s, LstatAt(parent, op.stage));
  if (IsId(n, op.staged)) {
    // In place already; what is left at the staging name is the displaced original.
    if (s) {
      SPECULA_TRY(RenameAt(parent, op.stage, r.pre_fd, slot, RENAME_NOREPLACE, op.path + " -> pre-image"));
      r.steps->Step();
    }
    return Status::Ok();
  }
  if (!IsId(s, op.staged)) {
    return Error(Code::kDataLoss, "staged object for " + op.path + " is gone");
  }
  if (!n) {
    if (::renameat2(parent, op.stage.c_str(), parent, name.c_str(), RENAME_NOREPLACE) == 0) {
      r.steps->Step();
      return Status::Ok();
    }
    if (errno != EEXIST) return Error::FromErrno("rename " + op.path);
    // The host created the path meanwhile: keep it as a pre-image like any original.
  }
  SPECULA_TRY(RenameAt(parent, op.stage, parent, name, RENAME_EXCHANGE, op.path));
  r.steps->Step();
  SPECULA_TRY(RenameAt(parent, op.stage, r.pre_fd, slot, RENAME_NOREPLACE, op.path + " -> pre-image"));
  r.steps->Step();
  return Status::Ok();
}

Status ForwardDelete(const Runner& r, size_t i, const JournalOp& op, int parent, const std::string& name) {
  const std::string slot = SlotName(i);
  SPECULA_ASSIGN_OR_RETURN(auto p, LstatAt(r.pre_fd, slot));
  if (p) return Status::Ok();
  SPECULA_ASSIGN_OR_RETURN(auto n, LstatAt(parent, name));
  if (!n) return Status::Ok();  // already gone from the host
  SPECULA_TRY(RenameAt(parent, name, r.pre_fd, slot, RENAME_NOREPLACE, op.path + " -> pre-image"));
  r.steps->Step();
  return Status::Ok();
}

Status BackwardPut(const Runner& r, size_t i, const JournalOp& op, int parent, const std::string& name) {
  const std::string slot = SlotName(i);
  SPECULA_ASSIGN_OR_RETURN(auto n, LstatAt(parent, name));
  SPECULA_ASSIGN_OR_RETURN(auto p, LstatAt(r.pre_fd, slot));
  if (IsId(n, op.staged)) {
    if (p) {
      SPECULA_TRY(RenameAt(r.pre_fd, slot, parent, name, RENAME_EXCHANGE, "pre-image -> " + op.path));
      r.steps->Step();
      SPECULA_TRY(RenameAt(r.pre_fd, slot, r.trash_fd, slot, RENAME_NOREPLACE, op.path + " -> trash"));
    } else {
      SPECULA_TRY(RenameAt(parent, name, r.trash_fd, slot, RENAME_NOREPLACE, op.path + " -> trash"));
    }
    r.steps->Step();
  } else if (IsId(p, op.staged)) {
    // Exchanged back already; the applied object waits in the pre-image slot.
    SPECULA_TRY(RenameAt(r.pre_fd, slot, r.trash_fd, slot, RENAME_NOREPLACE, op.path + " -> trash"));
    r.steps->Step();
  }
  return Status::Ok();
}

Status BackwardDelete(const Runner& r, size_t i, const JournalOp& op, int parent, const std::string& name) {
  const std::string slot = SlotName(i);
  SPECULA_ASSIGN_OR_RETURN(auto p, LstatAt(r.pre_fd, slot));
  if (!p) return Status::Ok();
  SPECULA_TRY(RenameAt(r.pre_fd, slot, parent, name, RENAME_NOREPLACE, "pre-image -> " + op.path));
  r.steps->Step();
  return Status::Ok();
}

// Every entry below a directory, depth first in name order, without
// following symlinks. Recursive: it walks what this apply staged, a tree
// the scan bounded to kMaxUpperDepth levels (upper_scan.cpp).
Status CollectTree(int dir_fd, const std::string& prefix, std::vector<std::pair<std::string, PostRec>>* out) {
  SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(dir_fd));
  for (const auto& n : names) {
    SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(dir_fd, n));
    if (!st) continue;
    std::string rel = JoinRel(prefix, n);
    out->emplace_back(rel, PostRec::Of(*st));
    if (S_ISDIR(st->st_mode)) {
      int fd = ::openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Error::FromErrno("open " + rel);
      UniqueFd sub(fd);
      SPECULA_TRY(CollectTree(sub.get(), rel, out));
    }
  }
  return Status::Ok();
}

Result<std::vector<std::pair<std::string, PostRec>>> SubtreeOf(int parent, const std::string& name,
                                                               const struct stat& st) {
  std::vector<std::pair<std::string, PostRec>> out;
  if (!S_ISDIR(st.st_mode)) return out;
  int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open " + name);
  UniqueFd d(fd);
  SPECULA_TRY(CollectTree(d.get(), "", &out));
  return out;
}

Status EmptyDir(int dir_fd) {
  SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(dir_fd));
  for (const auto& n : names) SPECULA_TRY(RemoveTreeAt(dir_fd, n));
  return Status::Ok();
}

}  // namespace

Status OpenSlots(Runner& r, UniqueFd& pre, UniqueFd& trash) {
  SPECULA_ASSIGN_OR_RETURN(pre, OpenDirBeneath(r.journal_fd, kPreDir));
  SPECULA_ASSIGN_OR_RETURN(trash, OpenDirBeneath(r.journal_fd, kTrashDir));
  r.pre_fd = pre.get();
  r.trash_fd = trash.get();
  return Status::Ok();
}

Status RollBackStaging(Runner& r) {
  for (const auto& op : r.journal->ops) {
    if (op.kind != OpKind::kPut) continue;
    auto [parent_rel, name] = SplitParent(op.path);
    auto parent = OpenDirBeneath(r.base_fd, parent_rel);
    if (!parent.ok()) continue;  // nothing can have been staged there
    SPECULA_TRY_CTX(RemoveTreeAt(parent->get(), op.stage), "remove staged " + op.path);
    SPECULA_TRY(FsyncFd(parent->get(), parent_rel));
    r.steps->Step();
  }
  r.journal->state = JournalState::kAborted;
  return WriteJournal(r.journal_fd, *r.journal, r.steps);
}

Status RollForward(Runner& r) {
  Journal& j = *r.journal;
  ParentCache parents(r.base_fd);
  for (size_t i = 0; i < j.ops.size(); ++i) {
    const JournalOp& op = j.ops[i];
    if (op.kind == OpKind::kMeta) continue;
    auto [parent_rel, name] = SplitParent(op.path);
    SPECULA_ASSIGN_OR_RETURN(int parent, parents.Get(parent_rel));
    if (op.kind == OpKind::kPut) SPECULA_TRY_CTX(ForwardPut(r, i, op, parent, name), "apply");
    else SPECULA_TRY_CTX(ForwardDelete(r, i, op, parent, name), "apply");
  }
  SPECULA_TRY(FsyncParents(r, true));
  // Directory attributes last, deepest first: renames above moved their mtimes.
  for (size_t i = j.ops.size(); i-- > 0;) {
    if (j.ops[i].kind == OpKind::kMeta) {
      SPECULA_TRY_CTX(SetMeta(r.base_fd, j.ops[i].path, j.ops[i].new_meta, r.steps), "apply");
    }
  }
  // Record what each path holds now, for the host-change check of Revert.
  for (auto& op : j.ops) {
    auto [parent_rel, name] = SplitParent(op.path);
    op.post = PostRec{};
    op.subtree_post.clear();
    if (op.kind == OpKind::kDelete) continue;
    SPECULA_ASSIGN_OR_RETURN(int parent, parents.Get(parent_rel));
    SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(parent, name));
    if (!st) continue;
    op.post = PostRec::Of(*st);
    if (op.kind == OpKind::kPut) { SPECULA_ASSIGN_OR_RETURN(op.subtree_post, SubtreeOf(parent, name, *st)); }
  }
  j.state = JournalState::kDone;
  return WriteJournal(r.journal_fd, j, r.steps);
}

Status CheckUnchangedSinceApply(const Runner& r) {
  std::vector<std::string> changed;
  for (const auto& op : r.journal->ops) {
    auto [parent_rel, name] = SplitParent(op.path);
    auto parent = OpenDirBeneath(r.base_fd, parent_rel);
    if (!parent.ok()) {
      changed.push_back(op.path + " (parent: " + parent.error().message() + ")");
      continue;
    }
    SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(parent->get(), name));
    switch (op.kind) {
      case OpKind::kDelete:
        if (st) changed.push_back(op.path + " (re-created)");
        break;
      case OpKind::kPut: {
        if (!st) { changed.push_back(op.path + " (removed)"); break; }
        if (!(PostRec::Of(*st) == op.post)) { changed.push_back(op.path + " (modified)"); break; }
        SPECULA_ASSIGN_OR_RETURN(auto sub, SubtreeOf(parent->get(), name, *st));
        if (sub != op.subtree_post) {
          // Name the first entry that differs, added or removed.
          size_t k = 0;
          while (k < sub.size() && k < op.subtree_post.size() && sub[k] == op.subtree_post[k]) ++k;
          std::string which = k < op.subtree_post.size() ? op.subtree_post[k].first : sub[k].first;
          changed.push_back(JoinRel(op.path, which) + " (modified below " + op.path + ")");
        }
        break;
      }
      case OpKind::kMeta:
        // Only attributes: a merged directory's mtime moves with any new entry.
        if (!st || (st->st_mode & 07777) != op.new_meta.mode || st->st_uid != op.new_meta.uid ||
            st->st_gid != op.new_meta.gid) {
          changed.push_back(op.path + " (directory attributes)");
        }
        break;
    }
  }
  if (changed.empty()) return Status::Ok();
  std::string msg = "host changed " + std::to_string(changed.size()) + " path(s) since the promote:";
  for (size_t i = 0; i < changed.size() && i < 5; ++i) msg += " " + changed[i];
  return Error(Code::kFailedPrecondition, msg)
      .WithHint("revert the host changes first, or keep the promote (DiscardJournal)");
}

Status RunRevert(Runner& r) {
  Journal& j = *r.journal;
  ParentCache parents(r.base_fd);
  for (size_t i = j.ops.size(); i-- > 0;) {
    const JournalOp& op = j.ops[i];
    if (op.kind == OpKind::kMeta) continue;
    auto [parent_rel, name] = SplitParent(op.path);
    SPECULA_ASSIGN_OR_RETURN(int parent, parents.Get(parent_rel));
    if (op.kind == OpKind::kPut) SPECULA_TRY_CTX(BackwardPut(r, i, op, parent, name), "revert");
    else SPECULA_TRY_CTX(BackwardDelete(r, i, op, parent, name), "revert");
  }
  SPECULA_TRY(FsyncParents(r, true));
  for (size_t i = j.ops.size(); i-- > 0;) {
    if (j.ops[i].kind == OpKind::kMeta) {
      SPECULA_TRY_CTX(SetMeta(r.base_fd, j.ops[i].path, j.ops[i].old_meta, r.steps), "revert");
    }
  }
  j.state = JournalState::kReverted;
  SPECULA_TRY(WriteJournal(r.journal_fd, j, r.steps));
  // The applied objects are garbage now; a crash here leaves only trash.
  SPECULA_TRY_CTX(EmptyDir(r.trash_fd), "revert: clean trash");
  return Status::Ok();
}

}  // namespace specula::apply
