// The one place an overlay is mounted (sandboxes, `specula mount` views):
// the new mount API with every layer passed as a file descriptor
// (fsconfig FSCONFIG_SET_FD "lowerdir+", "upperdir", "workdir"), so no path
// goes through an option string (no escaping of , : \, no page-size limit on
// the number of layers) and, with a user namespace, every layer is an
// idmapped clone (sandbox/userns.h). Mounted nosuid,nodev: a device node
// or setuid file that reached a layer means nothing through it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "sandbox/userns.h"

namespace specula::sandbox {

struct OverlayLayers {
  std::vector<std::string> lowers;  // topmost first, the base last
  // Both or neither (neither: a read-only view). With idmapping they must be
  // siblings: overlayfs wants them on one mount, and one idmapped clone of
  // their parent gives that.
  std::string upper, work;
};

struct OverlayMountOptions {
  std::string source = "overlay";  // the mount's source in mountinfo
  bool read_only = false;          // implied when there is no upper dir
  // index=on: a hard link whose one name is written in a later layer keeps
  // its other names linked (sandbox.cpp LinkUpIndexedAliases). It does not
  // turn on redirect_dir or metacopy, which runtime/apply refuses.
  bool index = true;
  // volatile: unmounting does not syncfs the upper dir's filesystem. That
  // sync (overlayfs's sync_fs on the last unmount) writes back the whole
  // filesystem, every other branch's dirty pages included (0.6-0.7 ms of
  // a 1.6 ms destroy in sandbox_bench; a btrfs transaction commit on the
  // store). A branch's upper is either thrown away or promoted, and
  // promote syncs the store itself before it records the checkpoint
  // (runtime/core PromoteLocked), so nothing relies on it. The
  // kernel then refuses to mount the same work dir again (work/incompat/
  // volatile stays behind): the runtime never reuses a branch's work dir,
  // and Mount empties a reused one's work/ (a clean unmount came first).
  bool sync_on_unmount = true;
  // Idmapped layers and mounter credentials of the sandbox's root; null:
  // layers as they are (host ids).
  const MappingUserns* idmap = nullptr;
};

// Owns one overlay mount at a host path; unmounts it on destruction (plain,
// then lazily if busy) unless Release()d.
class OverlayMount {
 public:
  static Result<OverlayMount> Mount(const OverlayLayers& layers, const std::string& target,
                                    const OverlayMountOptions& opts);
  OverlayMount() = default;
  OverlayMount(OverlayMount&& o) noexcept : target_(std::exchange(o.target_, {})) {}
  OverlayMount& operator=(OverlayMount&& o) noexcept;
  OverlayMount(const OverlayMount&) = delete;
  OverlayMount& operator=(const OverlayMount&) = delete;
  ~OverlayMount();

  bool mounted() const { return !target_.empty(); }
  const std::string& target() const { return target_; }
  Status Unmount();
  // Leaves the overlay mounted (a view that outlives the call that made it).
  void Release() { target_.clear(); }

 private:
  explicit OverlayMount(std::string target) : target_(std::move(target)) {}
  std::string target_;
};

}  // namespace specula::sandbox
