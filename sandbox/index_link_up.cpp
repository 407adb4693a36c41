#include "sandbox/index_link_up.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <set>

#include "common/safe_fs.h"
#include "common/unique_fd.h"

namespace specula::sandbox {
namespace {

// Regular files below dir (relative paths, "a/b"), filtered by keep(stat).
template <typename Keep>
std::vector<std::pair<std::string, struct stat>> FilesBelow(const std::string& dir, Keep keep) {
  std::vector<std::pair<std::string, struct stat>> out;
  std::error_code ec;
  namespace fs = std::filesystem;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !keep(st)) continue;
    out.emplace_back(it->path().lexically_relative(dir).string(), st);
  }
  return out;
}

// The overlay is mounted with index=on so that writing one name of a
// hard-linked lower file keeps its other names linked: the copy goes to
// <work>/index and the other names resolve to it. But only names actually
// written are linked into the upper dir, and the index (in the work dir) is
// dropped, so once the upper is sealed as a layer the other names would
// show the old lower file again. Before unmounting, every such alias found
// in the sandbox's layers is opened for writing through the overlay, which
// makes overlayfs link it up into the upper dir (no data copied, content and
// times unchanged). Names in the base are not searched: that walk would cost
// O(base); links created by actions live in layers.
}  // namespace

Status LinkUpIndexedAliases(const SandboxSpec& spec, const std::string& merged) {
  std::set<ino_t> indexed;  // upper-fs inodes of the index entries
  for (const auto& [rel, st] : FilesBelow(spec.work_dir + "/index", [](const struct stat&) { return true; })) {
    indexed.insert(st.st_ino);
  }
  if (indexed.empty()) return Status::Ok();
  UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::FromErrno("open " + merged);
  auto merged_stat = [&](const std::string& rel) -> std::optional<struct stat> {
    auto f = OpenBeneath(root.get(), rel, O_PATH | O_NOFOLLOW);
    struct stat st {};
    if (!f.ok() || ::fstat(f->get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return st;
  };
  // The upper dir is the branch's: never a path through it, only fds.
  UniqueFd upper(::open(spec.upper_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!upper) return Error::FromErrno("open " + spec.upper_dir);
  std::set<std::pair<dev_t, ino_t>> targets;  // overlay inodes with an indexed upper
  for (const auto& [rel, st] : FilesBelow(spec.upper_dir, [&](const struct stat& s) {
         return indexed.count(s.st_ino) != 0;
       })) {
    if (auto m = merged_stat(rel)) targets.emplace(m->st_dev, m->st_ino);
  }
  for (const auto& layer : spec.layers) {
    for (const auto& [rel, st] : FilesBelow(layer, [](const struct stat& s) { return s.st_nlink > 1; })) {
      if (OpenBeneath(upper.get(), rel, O_PATH | O_NOFOLLOW).ok()) continue;  // already in the upper
      auto m = merged_stat(rel);
      if (!m) continue;
      // Linked up when another name of it was written, or when names were
      // added or removed (index=on tracks the overlay's link count in the
      // index; the sealed layer must carry it as real links).
      if (targets.count({m->st_dev, m->st_ino}) == 0 && m->st_nlink == st.st_nlink) continue;
      SPECULA_TRY_CTX(OpenBeneath(root.get(), rel, O_WRONLY | O_NONBLOCK | O_NOFOLLOW), "link up hard link " + rel);
    }
  }
  return Status::Ok();
}

}  // namespace specula::sandbox
