// ApplyUpper (validate, stage, journal, commit), Recover, Revert.
// The step order and why it is crash-safe: docs/promote.md.
#include "runtime/apply/apply.h"

#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <set>

#include "runtime/apply/journal.h"
#include "runtime/apply/op_runner.h"
#include "runtime/apply/safe_fs.h"
#include "runtime/apply/upper_scan.h"

namespace specula::apply {
namespace {

// Why the base refused a staged file with EPERM, when an operator's file
// attribute is the reason: the nearest directory on the way to `rel`
// (its parent first) that is immutable or append-only (chattr +i / +a),
// as a hint; "" if there is none. Staging creates a file beside its
// target, which such a directory refuses though a branch could change the
// file itself (chmod, chown and writes of a file inside an immutable
// directory work on the host too).
std::string LockedDirectoryHint(int base_fd, const std::string& rel) {
  std::string dir = rel;
  while (!dir.empty()) {
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "" : dir.substr(0, slash);
    auto fd = OpenDirBeneath(base_fd, dir);  // "" is the base itself
    int flags = 0;
    if (!fd.ok() || ::ioctl(fd->get(), FS_IOC_GETFLAGS, &flags) != 0) continue;
    if ((flags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) == 0) continue;
    const bool immutable = (flags & FS_IMMUTABLE_FL) != 0;
    const std::string name = dir.empty() ? "the base's root" : dir;
    return name + (immutable ? " is immutable" : " is append-only") +
           " on the base, so nothing below it can be replaced; nothing was changed. `chattr " +
           (immutable ? "-i" : "-a") + "` it (see lsattr -d) and commit again, or leave it out of the action";
  }
  return "";
}

std::string Dirname(const std::string& path) {
  std::string copy = path;
  return ::dirname(copy.data());
}

// The journal dir must be new or empty: one journal per promote.
Result<UniqueFd> PrepareJournalDir(const std::string& path, bool* created) {
  if (path.empty()) return Error(Code::kInvalidArgument, "journal_dir is empty");
  *created = false;
  if (::mkdir(path.c_str(), 0700) == 0) {
    *created = true;
    SPECULA_ASSIGN_OR_RETURN(UniqueFd parent, OpenTrustedDir(Dirname(path)));
    SPECULA_TRY(FsyncFd(parent.get(), Dirname(path)));
  } else if (errno != EEXIST) {
    return Error::FromErrno("mkdir " + path);
  }
  SPECULA_ASSIGN_OR_RETURN(UniqueFd j, OpenTrustedDir(path));
  if (!*created) {
    SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(j.get()));
    if (!names.empty()) {
      return Error(Code::kAlreadyExists, "journal dir " + path + " is not empty")
          .WithHint("use a new journal dir per promote; Recover() an interrupted one");
    }
  }
  for (const char* sub : {kPreDir, kTrashDir}) {
    if (::mkdirat(j.get(), sub, 0700) != 0) return Error::FromErrno(std::string("mkdir ") + sub);
  }
  SPECULA_TRY(FsyncFd(j.get(), path));
  return j;
}

// The ids of `path` and all its ancestors: no op may replace or delete them.
Status AddSelfAndAncestors(const std::string& path, std::vector<FileId>* out) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return Error::FromErrno("realpath " + path);
  std::string p = real;
  std::free(real);
  for (;;) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return Error::FromErrno("lstat " + p);
    out->push_back(FileId::Of(st));
    if (p == "/") return Status::Ok();
    p = Dirname(p);
  }
}

// Writes the new objects of the plan next to their targets.
class Stager {
 public:
  Stager(int base_fd, int upper_fd, uint64_t journal_dev, bool per_file_fsync)
      : base_fd_(base_fd), upper_fd_(upper_fd), journal_dev_(journal_dev), per_file_(per_file_fsync) {}

  // Everything a rename after the commit point needs, checked before it:
  // a safe parent on the journal's filesystem, and no mount point as target.
  Result<UniqueFd> CheckTarget(const std::string& rel) {
    auto [parent_rel, name] = SplitParent(rel);
    SPECULA_ASSIGN_OR_RETURN(UniqueFd parent, OpenDirBeneath(base_fd_, parent_rel));
    SPECULA_TRY(CheckRegularFs(parent.get(), parent_rel));
    struct stat pst {};
    if (::fstat(parent.get(), &pst) != 0) return Error::FromErrno("fstat " + parent_rel);
    if (static_cast<uint64_t>(pst.st_dev) != journal_dev_) {
      // Pre-images are moved into the journal dir, which rename cannot do across filesystems.
      return Error(Code::kFailedPrecondition,
                   "base dir " + (parent_rel.empty() ? "." : parent_rel) +
                       " is on another filesystem than the journal dir")
          .WithHint("put the journal dir on the base's filesystem");
    }
    SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(parent.get(), name));
    if (st && st->st_dev != pst.st_dev) {
      return Error(Code::kFailedPrecondition, rel + " is a mount point; a promote cannot replace it");
    }
    return parent;
  }

  Status StageOp(const PlannedOp& pop, JournalOp& jop) {
    auto [parent_rel, name] = SplitParent(pop.rel);
    SPECULA_ASSIGN_OR_RETURN(UniqueFd parent, CheckTarget(pop.rel));
    SPECULA_TRY(StageNode(parent.get(), parent_rel, jop.stage, pop.node));
    SPECULA_ASSIGN_OR_RETURN(auto st, LstatAt(parent.get(), jop.stage));
    if (!st) return Error(Code::kInternal, "staged " + pop.rel + " vanished");
    jop.staged = FileId::Of(*st);
    parents_.insert(parent_rel);
    return Status::Ok();
  }

  Status FsyncParents() {
    if (!per_file_) return SyncFs(base_fd_, "base");
    for (const auto& p : parents_) {
      SPECULA_ASSIGN_OR_RETURN(UniqueFd d, OpenDirBeneath(base_fd_, p));
      SPECULA_TRY(FsyncFd(d.get(), p.empty() ? "." : p));
    }
    return Status::Ok();
  }

  uint64_t bytes() const { return bytes_; }

 private:
  Status SetXattrs(int fd, const Node& n) {
    for (const auto& x : n.xattrs) {
      if (::fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) != 0) {
        return Error::FromErrno("setxattr " + x.name + " on " + n.rel);
      }
    }
    return Status::Ok();
  }

  Status StageFile(int dir_fd, const std::string& dir_rel, const std::string& name, const Node& n) {
    std::pair<uint64_t, uint64_t> key{n.upper_id.dev, n.upper_id.ino};
    if (n.hardlinked) {
      auto it = links_.find(key);
      if (it != links_.end()) {
        // Another upper path of the same inode was staged already: link to it.
        SPECULA_ASSIGN_OR_RETURN(UniqueFd from, OpenDirBeneath(base_fd_, it->second.first));
        if (::linkat(from.get(), it->second.second.c_str(), dir_fd, name.c_str(), 0) != 0) {
          return Error::FromErrno("link " + n.rel);
        }
        return Status::Ok();
      }
    }
    SPECULA_ASSIGN_OR_RETURN(UniqueFd src, OpenBeneath(upper_fd_, n.rel, O_RDONLY | O_NOCTTY | O_NONBLOCK));
    struct stat sst {};
    if (::fstat(src.get(), &sst) != 0) return Error::FromErrno("fstat upper " + n.rel);
    if (!S_ISREG(sst.st_mode) || FileId::Of(sst) != n.upper_id) {
      return Error(Code::kAborted, "upper file " + n.rel + " changed after validation");
    }
    int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Error::FromErrno("create staged " + n.rel);
    UniqueFd dst(fd);
    SPECULA_ASSIGN_OR_RETURN(uint64_t copied, CopyData(src.get(), dst.get()));
    bytes_ += copied;
    // chown before chmod (chown clears setuid), xattrs after both (chown
    // clears security.capability), times last.
    if (::fchown(dst.get(), n.uid, n.gid) != 0) return Error::FromErrno("chown " + n.rel);
    if (::fchmod(dst.get(), n.perm) != 0) return Error::FromErrno("chmod " + n.rel);
    SPECULA_TRY(SetXattrs(dst.get(), n));
    struct timespec ts[2] = {n.atime, n.mtime};
    if (::futimens(dst.get(), ts) != 0) return Error::FromErrno("utimens " + n.rel);
    if (per_file_) SPECULA_TRY(FsyncFd(dst.get(), n.rel));
    if (n.hardlinked) links_[key] = {dir_rel, name};
    return Status::Ok();
  }

  // Recursive, one fd per level: the scan refused any tree deeper than
  // kMaxUpperDepth, so this is bounded (about 1 KB of stack per level).
  Status StageNode(int dir_fd, const std::string& dir_rel, const std::string& name, const Node& n) {
    switch (n.type) {
      case Node::Type::kFile:
        return StageFile(dir_fd, dir_rel, name, n);
      case Node::Type::kDir: {
        if (::mkdirat(dir_fd, name.c_str(), 0700) != 0) return Error::FromErrno("mkdir staged " + n.rel);
        int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return Error::FromErrno("open staged " + n.rel);
        UniqueFd d(fd);
        for (const auto& c : n.children) SPECULA_TRY(StageNode(d.get(), JoinRel(dir_rel, name), c.name, c));
        if (::fchown(d.get(), n.uid, n.gid) != 0) return Error::FromErrno("chown " + n.rel);
        if (::fchmod(d.get(), n.perm) != 0) return Error::FromErrno("chmod " + n.rel);
        SPECULA_TRY(SetXattrs(d.get(), n));
        struct timespec ts[2] = {n.atime, n.mtime};
        if (::futimens(d.get(), ts) != 0) return Error::FromErrno("utimens " + n.rel);
        return per_file_ ? FsyncFd(d.get(), n.rel) : Status::Ok();
      }
      case Node::Type::kSymlink: {
        if (::symlinkat(n.link_target.c_str(), dir_fd, name.c_str()) != 0) {
          return Error::FromErrno("symlink staged " + n.rel);
        }
        break;
      }
      case Node::Type::kSpecial: {
        if (::mknodat(dir_fd, name.c_str(), n.fmt | 0600, n.rdev) != 0) {
          return Error::FromErrno("mknod staged " + n.rel);
        }
        break;
      }
    }
    // Symlinks and special files: no fd to work through, so by name, never following.
    if (::fchownat(dir_fd, name.c_str(), n.uid, n.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return Error::FromErrno("chown " + n.rel);
    }
    if (n.type == Node::Type::kSpecial &&
        ::fchmodat(dir_fd, name.c_str(), n.perm, AT_SYMLINK_NOFOLLOW) != 0) {
      return Error::FromErrno("chmod " + n.rel);
    }
    struct timespec ts[2] = {n.atime, n.mtime};
    if (::utimensat(dir_fd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
      return Error::FromErrno("utimens " + n.rel);
    }
    return Status::Ok();
  }

  int base_fd_;
  int upper_fd_;
  uint64_t journal_dev_;
  bool per_file_;
  std::set<std::string> parents_;
  // Upper inode -> where its first link was staged (dir relative to base, name).
  std::map<std::pair<uint64_t, uint64_t>, std::pair<std::string, std::string>> links_;
  uint64_t bytes_ = 0;
};

// Above this many objects one syncfs beats an fsync each (docs/promote.md).
constexpr uint64_t kSyncFsThreshold = 64;

// Iterative, like every walk that need not recurse: the scan bounds the
// tree's depth (kMaxUpperDepth), this does not even depend on it.
uint64_t CountNodes(const Node& root) {
  uint64_t c = 0;
  std::vector<const Node*> todo{&root};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    ++c;
    for (const auto& ch : n->children) todo.push_back(&ch);
  }
  return c;
}

Result<FileId> IdOfFd(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::FromErrno("fstat " + what);
  return FileId::Of(st);
}

Result<ApplyReport> ApplyImpl(const std::string& upper_dir, const std::string& base_dir,
                              const ApplyOptions& opts, bool* journal_created) {
  SPECULA_ASSIGN_OR_RETURN(UniqueFd upper, OpenTrustedDir(upper_dir));
  SPECULA_ASSIGN_OR_RETURN(UniqueFd base, OpenTrustedDir(base_dir));
  SPECULA_ASSIGN_OR_RETURN(FileId upper_id, IdOfFd(upper.get(), upper_dir));
  SPECULA_ASSIGN_OR_RETURN(FileId base_id, IdOfFd(base.get(), base_dir));
  if (upper_id == base_id) return Error(Code::kInvalidArgument, "upper and base are the same directory");

  SPECULA_ASSIGN_OR_RETURN(UniqueFd jfd, PrepareJournalDir(opts.journal_dir, journal_created));
  SPECULA_ASSIGN_OR_RETURN(FileId journal_id, IdOfFd(jfd.get(), opts.journal_dir));
  CrashCounter steps(kCrashPointApplyStep, opts.crash_at);
  steps.Step();

  // 1. Validate everything; nothing is written to the base before this ends.
  ScanOptions so{.promotion = opts.promotion, .allow_fifos_and_sockets = opts.allow_fifos_and_sockets};
  so.journal_dir_id = journal_id;
  SPECULA_TRY(AddSelfAndAncestors(opts.journal_dir, &so.protected_ids));
  SPECULA_TRY(AddSelfAndAncestors(upper_dir, &so.protected_ids));
  SPECULA_ASSIGN_OR_RETURN(Plan plan, ScanUpper(upper.get(), base.get(), so));
  ApplyReport report = std::move(plan.report);
  if (opts.fail_on_rejected && !report.rejected.empty()) {
    return Error(Code::kPermissionDenied,
                 "upper holds " + std::to_string(report.rejected.size()) + " rejected entries, first " +
                     report.rejected[0].path + ": " + report.rejected[0].detail);
  }
  if (opts.after_validate) opts.after_validate();

  // 2. Intent: the staging names, durable before any of them exists.
  Journal j;
  j.id = RandomId();
  j.base = base_id;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlannedOp& p = plan.ops[i];
    JournalOp op{.kind = p.kind, .path = p.rel};
    if (p.kind == OpKind::kPut) op.stage = ".specula-stage." + j.id + "." + std::to_string(i);
    op.old_meta = p.old_meta;
    op.new_meta = p.new_meta;
    j.ops.push_back(std::move(op));
  }
  report.journal_id = j.id;
  SPECULA_TRY(WriteJournal(jfd.get(), j, &steps));

  Runner r{.base_fd = base.get(), .journal_fd = jfd.get(), .journal = &j, .steps = &steps};
  UniqueFd pre, trash;
  SPECULA_TRY(OpenSlots(r, pre, trash));

  // 3. Stage every new object next to its target and make it durable.
  uint64_t objects = 0;
  for (const auto& p : plan.ops) objects += p.kind == OpKind::kPut ? CountNodes(p.node) : 1;
  bool syncfs = opts.sync == ApplyOptions::Sync::kSyncFs ||
                (opts.sync == ApplyOptions::Sync::kAuto && objects > kSyncFsThreshold);
  r.use_syncfs = syncfs;
  Stager stager(base.get(), upper.get(), journal_id.dev, !syncfs);
  Status staged = Status::Ok();
  for (size_t i = 0; i < plan.ops.size() && staged.ok(); ++i) {
    if (plan.ops[i].kind == OpKind::kDelete) {
      auto checked = stager.CheckTarget(plan.ops[i].rel);
      if (!checked.ok()) staged = std::move(checked).status().Context("check " + plan.ops[i].rel);
      continue;
    }
    if (plan.ops[i].kind != OpKind::kPut) continue;
    staged = stager.StageOp(plan.ops[i], j.ops[i]);
    if (staged.ok()) {
      steps.Step();
      continue;
    }
    staged.Context("stage " + plan.ops[i].rel);
    if (staged.error().sys_errno() == EPERM) {
      if (std::string hint = LockedDirectoryHint(base.get(), plan.ops[i].rel); !hint.empty()) {
        staged = Error(std::move(staged).error()).WithHint(std::move(hint));
      }
    }
  }
  if (staged.ok()) staged = stager.FsyncParents();
  if (!staged.ok()) {
    Status undo = RollBackStaging(r);
    if (!undo.ok()) spdlog::error("apply: cleaning up staged files: {}", undo.ToString());
    return std::move(staged).error();
  }
  steps.Step();
  report.bytes = stager.bytes();

  // 4. The commit point: from here on Recover() rolls forward.
  j.state = JournalState::kCommitted;
  SPECULA_TRY(WriteJournal(jfd.get(), j, &steps));

  // 5. Rename into place, keep the originals as pre-images, mark done.
  SPECULA_TRY_CTX(RollForward(r), "committed apply (Recover() finishes it)");
  report.steps = steps.steps();
  return report;
}

struct OpenedJournal {
  UniqueFd jfd, base, pre, trash;
  Journal journal;
};

Result<std::optional<OpenedJournal>> OpenJournal(const std::string& journal_dir, const std::string& base_dir) {
  int fd = ::open(journal_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return std::optional<OpenedJournal>();
  if (fd < 0) return Error::FromErrno("open " + journal_dir);
  OpenedJournal o;
  o.jfd = UniqueFd(fd);
  SPECULA_ASSIGN_OR_RETURN(auto j, ReadJournal(o.jfd.get()));
  if (!j) return std::optional<OpenedJournal>();
  o.journal = std::move(*j);
  SPECULA_ASSIGN_OR_RETURN(o.base, OpenTrustedDir(base_dir));
  SPECULA_ASSIGN_OR_RETURN(FileId base_id, IdOfFd(o.base.get(), base_dir));
  if (!(base_id == o.journal.base)) {
    return Error(Code::kInvalidArgument, "journal " + journal_dir + " belongs to another base than " + base_dir);
  }
  SPECULA_ASSIGN_OR_RETURN(o.pre, OpenDirBeneath(o.jfd.get(), kPreDir));
  SPECULA_ASSIGN_OR_RETURN(o.trash, OpenDirBeneath(o.jfd.get(), kTrashDir));
  return std::optional(std::move(o));
}

Runner RunnerFor(OpenedJournal& o, CrashCounter* steps) {
  return Runner{.base_fd = o.base.get(), .journal_fd = o.jfd.get(), .pre_fd = o.pre.get(),
                .trash_fd = o.trash.get(), .journal = &o.journal, .steps = steps};
}

}  // namespace

Result<ApplyReport> ApplyUpper(const std::string& upper_dir, const std::string& base_dir,
                               const ApplyOptions& opts) {
  bool created = false;
  auto r = ApplyImpl(upper_dir, base_dir, opts, &created);
  if (!r.ok()) {
    r.Context("apply " + upper_dir + " onto " + base_dir);
    // Refused before the first journal write: leave no empty journal dir behind.
    std::string jfile = opts.journal_dir + "/" + kJournalFile;
    if (created && ::access(jfile.c_str(), F_OK) != 0 && errno == ENOENT) {
      auto parent = OpenTrustedDir(Dirname(opts.journal_dir));
      std::string copy = opts.journal_dir;
      if (parent.ok() && !RemoveTreeAt(parent->get(), ::basename(copy.data())).ok()) {
        spdlog::warn("apply: could not remove journal dir {}", opts.journal_dir);
      }
    }
  }
  return r;
}

const char* ToString(RecoveryAction a) {
  switch (a) {
    case RecoveryAction::kNothing: return "nothing";
    case RecoveryAction::kRolledBack: return "rolled_back";
    case RecoveryAction::kRolledForward: return "rolled_forward";
    case RecoveryAction::kRevertFinished: return "revert_finished";
  }
  return "unknown";
}

Result<RecoveryReport> Recover(const std::string& journal_dir, const std::string& base_dir,
                               const RecoverOptions& opts) {
  RecoveryReport rep;
  rep.state_found = "none";
  auto opened = OpenJournal(journal_dir, base_dir);
  if (!opened.ok()) return std::move(opened).error().Context("recover " + journal_dir);
  if (!*opened) return rep;
  OpenedJournal& o = **opened;
  CrashCounter steps(kCrashPointApplyStep, opts.crash_at);
  Runner r = RunnerFor(o, &steps);
  r.use_syncfs = o.journal.ops.size() > kSyncFsThreshold;
  rep.state_found = ToString(o.journal.state);
  rep.ops = o.journal.ops.size();
  Status st = Status::Ok();
  switch (o.journal.state) {
    case JournalState::kStaging:
      st = RollBackStaging(r);
      rep.action = RecoveryAction::kRolledBack;
      break;
    case JournalState::kCommitted:
      st = RollForward(r);
      rep.action = RecoveryAction::kRolledForward;
      break;
    case JournalState::kReverting:
      st = RunRevert(r);
      rep.action = RecoveryAction::kRevertFinished;
      break;
    case JournalState::kReverted: {
      // A crash may have left the reverted objects in trash/.
      SPECULA_ASSIGN_OR_RETURN(auto names, ListDirAt(o.trash.get()));
      for (const auto& n : names) st = RemoveTreeAt(o.trash.get(), n);
      break;
    }
    case JournalState::kDone:
    case JournalState::kAborted:
      break;
  }
  if (!st.ok()) return std::move(st).error().Context("recover " + journal_dir);
  if (rep.action != RecoveryAction::kNothing) {
    spdlog::info("apply journal {}: found {}, {}", journal_dir, rep.state_found, ToString(rep.action));
  }
  return rep;
}

Status Revert(const std::string& journal_dir, const std::string& base_dir, const RevertOptions& opts) {
  auto opened = OpenJournal(journal_dir, base_dir);
  if (!opened.ok()) return std::move(opened).error().Context("revert " + journal_dir);
  if (!*opened) return Error(Code::kNotFound, "revert: no journal in " + journal_dir);
  OpenedJournal& o = **opened;
  CrashCounter steps(kCrashPointApplyStep, opts.crash_at);
  Runner r = RunnerFor(o, &steps);
  r.use_syncfs = o.journal.ops.size() > kSyncFsThreshold;
  switch (o.journal.state) {
    case JournalState::kDone:
      break;
    case JournalState::kReverted:
      return Status::Ok();
    case JournalState::kReverting:
      return RunRevert(r).Context("revert " + journal_dir);
    default:
      return Error(Code::kFailedPrecondition, std::string("revert: apply journal is ") +
                                                  ToString(o.journal.state) + ", not done")
          .WithHint("run Recover() first");
  }
  SPECULA_TRY_CTX(CheckUnchangedSinceApply(r), "revert " + journal_dir);
  o.journal.state = JournalState::kReverting;
  SPECULA_TRY_CTX(WriteJournal(o.jfd.get(), o.journal, &steps), "revert");
  return RunRevert(r).Context("revert " + journal_dir);
}

Status DiscardJournal(const std::string& journal_dir) {
  int fd = ::open(journal_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Status::Ok();
  if (fd < 0) return Error::FromErrno("discard journal: open " + journal_dir);
  UniqueFd jfd(fd);
  SPECULA_ASSIGN_OR_RETURN(auto j, ReadJournal(jfd.get()));
  if (j && (j->state == JournalState::kStaging || j->state == JournalState::kCommitted ||
            j->state == JournalState::kReverting)) {
    return Error(Code::kFailedPrecondition, std::string("discard journal: it is ") + ToString(j->state))
        .WithHint("run Recover() first");
  }
  jfd.Reset();
  SPECULA_ASSIGN_OR_RETURN(UniqueFd parent, OpenTrustedDir(Dirname(journal_dir)));
  std::string copy = journal_dir;
  SPECULA_TRY_CTX(RemoveTreeAt(parent.get(), ::basename(copy.data())), "discard journal");
  return FsyncFd(parent.get(), Dirname(journal_dir));
}

}  // namespace specula::apply
