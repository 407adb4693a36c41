// CheckpointStore::RemoveOrphans: the garbage a crash can leave in the
// store. Every write path records files after creating them (a CRIU image,
// then its checkpoint row; a sealed layer, then the checkpoint that lists
// it) and deletes rows before files, so what a crash leaves is always an
// unreferenced file or row, never a row pointing at nothing: removing the
// unreferenced is all recovery has to do.
#include <dirent.h>
#include <sys/stat.h>

#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "runtime/store/checkpoint_store.h"

namespace specula::store {
namespace {

Result<std::vector<std::string>> DirNames(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return Error::FromErrno("opendir " + dir);
  }
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

}  // namespace

Result<CheckpointStore::OrphanReport> CheckpointStore::RemoveOrphans() {
  OrphanReport rep;
  std::set<std::string> checkpoints, listed_layers, layer_rows;
  std::vector<std::string> doomed_rows;
  {
    std::lock_guard lock(mu_);
    SPECULA_ASSIGN_OR_RETURN(auto qc, db_.Prepare("SELECT id, layers FROM checkpoints"));
    for (;;) {
      SPECULA_ASSIGN_OR_RETURN(bool row, qc.Step());
      if (!row) break;
      checkpoints.insert(qc.Text(0));
      auto layers = nlohmann::json::parse(qc.Text(1), nullptr, /*allow_exceptions=*/false);
      // A row this build cannot read keeps every layer: never guess at data loss.
      if (!layers.is_array()) return Error(Code::kDataLoss, "checkpoint " + qc.Text(0) + ": layers not a list");
      for (const auto& l : layers) {
        if (l.is_string()) listed_layers.insert(l.get<std::string>());
      }
    }
    SPECULA_ASSIGN_OR_RETURN(auto ql, db_.Prepare("SELECT id FROM layers"));
    for (;;) {
      SPECULA_ASSIGN_OR_RETURN(bool row, ql.Step());
      if (!row) break;
      std::string id = ql.Text(0);
      if (listed_layers.count(id) == 0) doomed_rows.push_back(id);
      else layer_rows.insert(std::move(id));
    }
    // Rows first, as DeleteSession does: a crash half-way through leaves
    // directories, which the next run removes.
    for (const auto& id : doomed_rows) {
      SPECULA_ASSIGN_OR_RETURN(auto qd, db_.Prepare("DELETE FROM layers WHERE id=?"));
      qd.Bind(1, id);
      SPECULA_TRY_CTX(qd.Run(), "remove orphan layer " + id);
    }
  }
  rep.layer_rows = doomed_rows.size();
  SPECULA_ASSIGN_OR_RETURN(auto images, DirNames(dir_ + "/images"));
  for (const auto& n : images) {
    if (checkpoints.count(n) != 0) continue;
    SPECULA_TRY_CTX(RemoveTree(ImageDir(n)), "remove orphan image");
    ++rep.image_dirs;
  }
  SPECULA_ASSIGN_OR_RETURN(auto layer_dirs, DirNames(fs_dir_ + "/layers"));
  for (const auto& n : layer_dirs) {
    if (layer_rows.count(n) != 0) continue;
    std::string container = fs_dir_ + "/layers/" + n;
    ::chmod(container.c_str(), 0700);  // sealed containers are 0500
    SPECULA_TRY_CTX(RemoveTree(container), "remove orphan layer");
    ++rep.layer_dirs;
  }
  // Quota groups of subvolumes that are gone (a crash between deleting a
  // branch volume and the kernel dropping its qgroup, or kernels that never
  // drop them): they would pile up over the store's life.
  if (btrfs_) {
    auto stale = btrfs_->RemoveStaleQgroups();
    if (stale.ok()) rep.qgroups = *stale;
    else spdlog::warn("crash recovery: stale qgroups: {}", stale.error().ToString());
  }
  if (rep.image_dirs + rep.layer_rows + rep.layer_dirs + rep.qgroups > 0) {
    spdlog::warn("crash recovery: removed {} unrecorded image dir(s), {} unlisted layer(s), {} layer dir(s), "
                 "{} stale qgroup(s)",
                 rep.image_dirs, rep.layer_rows, rep.layer_dirs, rep.qgroups);
  }
  return rep;
}

}  // namespace specula::store
