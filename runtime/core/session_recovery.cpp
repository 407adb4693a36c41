// SessionManager::Open's crash recovery (DESIGN.md contract 6): what a
// previous daemon left behind is reconciled with the kernel and the disk
// before any session is served.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "common/files.h"
#include "runtime/apply/apply.h"
#include "runtime/core/crash_recovery.h"
#include "runtime/core/session_internal.h"
#include "runtime/lossy/lossy_journal.h"

namespace specula::core {
namespace {

Result<std::vector<std::string>> Entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return Error::FromErrno("opendir " + dir);
  }
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

}  // namespace

Status SessionManager::RecoverAfterCrash() {
  std::string branches_root = store_->BranchDir("");
  branches_root.pop_back();  // BranchDir("") ends in '/'
  SPECULA_ASSIGN_OR_RETURN(auto sessions, store_->ListSessions());
  // Every sandbox a previous daemon may have left: one per branch dir (also
  // non-speculative runs and squash scratch) and per unfinished branch record.
  SPECULA_ASSIGN_OR_RETURN(auto dirs, Entries(branches_root));
  std::set<std::string> names(dirs.begin(), dirs.end());
  std::set<std::string> unfinished;  // branch records Open will mark discarded
  for (const auto& rec : sessions) {
    SPECULA_ASSIGN_OR_RETURN(auto branches, store_->ListBranches(rec.id));
    for (const auto& b : branches) {
      auto st = StateFromString(b.state);
      if (!st || !IsFinal(*st)) {
        names.insert(b.id);
        unfinished.insert(b.id);
      }
    }
  }
  SPECULA_TRY(ReapLeftovers(opts_.state_dir, branches_root, {names.begin(), names.end()}, criu_->RestoreStageDir())
                  .status());
  // Nothing is mounted there any more, so removal cannot reach through an
  // overlay into a lower layer or the base.
  // A crashed branch's writes to lossy paths are undone like a discard's:
  // its pre-images are in its dir (instrument::BranchProbe keeps them
  // there), newest first as siblings' discards are (lossy_journal.h).
  std::vector<std::pair<std::string, lossy::LossyJournal>> lossy_journals;
  for (const auto& d : dirs) {
    std::string dir = branches_root + "/" + d;
    struct stat st;
    if (::stat((dir + "/lossy").c_str(), &st) != 0) continue;
    auto journal = lossy::LossyJournal::Load(dir);
    if (!journal.ok()) {
      spdlog::error("crash recovery: branch {}: lossy restore: {}", d, journal.error().ToString());
      continue;
    }
    lossy_journals.emplace_back(d, std::move(*journal));
  }
  std::stable_sort(lossy_journals.begin(), lossy_journals.end(), [](const auto& x, const auto& y) {
    return x.second.prepared_unix_ns() > y.second.prepared_unix_ns();
  });
  for (auto& [d, journal] : lossy_journals) {
    auto restored = journal.Restore();
    if (!restored.ok()) {
      spdlog::error("crash recovery: branch {}: lossy restore: {}", d, restored.error().ToString());
    } else if (!restored->empty()) {
      spdlog::warn("crash recovery: branch {}: restored {} lossy pre-image(s)", d, restored->size());
    }
  }
  for (const auto& d : dirs) {
    std::string dir = branches_root + "/" + d;
    // What the branch wrote before the crash, for branch.show afterwards
    // (its report and result were recorded when its action finished).
    if (unfinished.count(d) != 0) {
      // vol/upper; "upper" in branch dirs of older builds.
      std::string upper = store_->BranchUpperDir(d);
      if (::access(upper.c_str(), F_OK) != 0) upper = dir + "/upper";
      if (auto bytes = DiskUsage(upper); bytes.ok()) {
        store::BranchUpdate u;
        u.upper_bytes = *bytes;
        if (Status rec = store_->UpdateBranch(d, u); !rec.ok()) {
          spdlog::warn("crash recovery: branch {}: record upper size: {}", d, rec.ToString());
        }
      }
    }
    SPECULA_TRY_CTX(RemoveTree(dir), "crash recovery");
  }

  // Promotes to the base interrupted by the crash: finish or undo each
  // journal. A promote whose checkpoint never reached the database did not
  // happen for the session, so a finished apply of it is reverted (the base
  // ends up before that promote, not half-way or silently ahead).
  std::map<std::string, std::string> base_of;
  for (const auto& rec : sessions) base_of[rec.id] = rec.base;
  SPECULA_ASSIGN_OR_RETURN(auto journals, Entries(store_->JournalDir()));
  for (const auto& name : journals) {
    std::string dir = store_->JournalDir() + "/" + name;
    // "<session>.<checkpoint>"; older stores named them "<checkpoint>".
    auto dot = name.find('.');
    std::string ckpt_id = dot == std::string::npos ? name : name.substr(dot + 1);
    std::string session = dot == std::string::npos ? "" : name.substr(0, dot);
    auto ckpt = store_->GetCheckpoint(ckpt_id);
    if (ckpt.ok()) session = ckpt->session;
    auto base = base_of.find(session);
    if (base == base_of.end() && !ckpt.ok() && dot != std::string::npos) {
      // Its session's rows are gone: a destroy that died before removing the
      // session's directories (DeleteSession deletes rows first). Whatever
      // state the journal is in, nobody can roll back through it any more.
      spdlog::warn("crash recovery: journal {} of destroyed session {}: removed", dir, session);
      SPECULA_TRY_CTX(RemoveTree(dir), "crash recovery");
      continue;
    }
    if (base == base_of.end()) {
      spdlog::warn("crash recovery: journal {} belongs to no session; left alone", dir);
      continue;
    }
    SPECULA_ASSIGN_OR_RETURN(auto rep, apply::Recover(dir, base->second));
    if (ckpt.ok()) {
      // A recorded promote: its journal serves rollback. Reverted while it
      // is still the head, it is a rollback that died between undoing it on
      // the base and moving the head (Rollback does one step at a time):
      // finish that step, so the head says what the base holds.
      bool reverted = rep.state_found == "reverted" || rep.action == apply::RecoveryAction::kRevertFinished;
      auto rec = store_->GetSession(session);
      if (reverted && rec.ok() && rec->head == ckpt->id) {
        spdlog::warn("crash recovery: session {}: rollback of {} was interrupted after the base was reverted; "
                     "head moves to {}",
                     session, ckpt->id, ckpt->parent);
        SPECULA_TRY_CTX(store_->SetHead(session, ckpt->parent), "crash recovery");
      }
      continue;
    }
    if (rep.action == apply::RecoveryAction::kRolledForward || rep.state_found == "done") {
      if (Status st = apply::Revert(dir, base->second); !st.ok()) {
        spdlog::error("crash recovery: undo unrecorded promote {} on {}: {}", dir, base->second, st.ToString());
        continue;
      }
    }
    spdlog::warn("crash recovery: promote {} of session {} was interrupted (journal {}): undone", ckpt_id, session,
                 rep.state_found);
    SPECULA_TRY_CTX(RemoveTree(dir), "crash recovery");
  }
  return Status::Ok();
}

}  // namespace specula::core
