// Executes journaled apply operations idempotently, in either direction.
// Every step reads back where the op stands from the inode numbers at its
// places (target, staging name, pre/<i>, trash/<i>), so running a phase again
// after a crash at any point continues exactly where it stopped. Shared by
// ApplyUpper, Recover and Revert. Internal to runtime/apply.
#pragma once

#include "common/error.h"
#include "runtime/apply/journal.h"

namespace specula::apply {

struct Runner {
  int base_fd = -1;
  int journal_fd = -1;
  int pre_fd = -1;
  int trash_fd = -1;
  Journal* journal = nullptr;
  CrashCounter* steps = nullptr;
  // Flush with one syncfs(2) instead of an fsync per directory (many ops).
  bool use_syncfs = false;
};

// Opens pre/ and trash/ of an existing journal directory.
Status OpenSlots(Runner& r, UniqueFd& pre, UniqueFd& trash);

// staging -> aborted: removes every staging name. The base is as before.
Status RollBackStaging(Runner& r);
// committed -> done: renames every op into place, sets merged dirs' meta,
// fsyncs, records what each path now holds.
Status RollForward(Runner& r);
// done: kFailedPrecondition if any path changed since the apply.
Status CheckUnchangedSinceApply(const Runner& r);
// reverting -> reverted: puts every pre-image back, removes what was created.
Status RunRevert(Runner& r);

}  // namespace specula::apply
