// Validation pass of apply: walks the UNTRUSTED upper directory (never
// following a symlink, never opening without O_NOFOLLOW) next to the base and
// turns it into a plan of operations. Nothing is written here. Internal to
// runtime/apply.
#pragma once

#include <sys/stat.h>

#include <ctime>
#include <string>
#include <vector>

#include "common/error.h"
#include "policies/policy.h"
#include "runtime/apply/apply.h"
#include "runtime/apply/journal.h"
#include "runtime/apply/safe_fs.h"

namespace specula::apply {

// One object to create in the base (with everything below it, for a dir).
struct Node {
  enum class Type { kFile, kDir, kSymlink, kSpecial };
  Type type = Type::kFile;
  std::string name;  // last component
  std::string rel;   // path relative to the upper root
  uint32_t perm = 0;  // permission bits to set, after stripping
  uint32_t fmt = 0;   // S_IFMT bits (kSpecial: which kind of node)
  dev_t rdev = 0;
  uint32_t uid = 0, gid = 0;
  struct timespec atime {}, mtime {};
  std::string link_target;    // kSymlink
  std::vector<Xattr> xattrs;  // kFile/kDir, already filtered by policy
  FileId upper_id;            // to re-check identity when staging, and for hardlinks
  bool hardlinked = false;    // kFile with nlink > 1 in the upper
  std::vector<Node> children;  // kDir
};

struct PlannedOp {
  OpKind kind = OpKind::kPut;
  std::string rel;
  Node node;                 // kPut
  bool base_exists = false;  // kPut: the target existed at scan time
  MetaRec old_meta, new_meta;  // kMeta
};

struct ScanOptions {
  policy::Promotion promotion;
  bool allow_fifos_and_sockets = false;
  // Objects that no op may replace or delete (the journal dir, the upper dir
  // and their ancestors), and the one dir nothing may be written into.
  std::vector<FileId> protected_ids;
  FileId journal_dir_id;
};

struct Plan {
  std::vector<PlannedOp> ops;  // pre-order: a merged dir's meta op before its children
  ApplyReport report;          // added/changed/deleted/dirs_updated, stripped, rejected
};

Result<Plan> ScanUpper(int upper_fd, int base_fd, const ScanOptions& opts);

}  // namespace specula::apply
