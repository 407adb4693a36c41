// User namespaces (docs/sandbox.md "User namespace"): a branch's root is not
// the host's root. Every sandbox gets a user namespace of its own whose ids
// 0..count-1 are the host ids host_base..host_base+count-1, as rootless
// containers and bubblewrap do. The files the sandbox sees keep their real
// owners: every layer of its overlay (base, sealed layers, the upper dir) is
// an idmapped mount with the same mapping, so on-disk uid 0 is the sandbox's
// root and what the sandbox writes lands on disk with the ids it used
// inside (ownership survives promote to the host). Processes in the sandbox
// run as host ids >= host_base: no capability they hold means anything
// outside their own namespaces.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::sandbox {

// The last 64 Ki block of the container range systemd documents
// (0x00080000..0x6FFFFFFF, docs/UIDS-GIDS.md), far from real users and from
// the signedness trouble of ids >= 2^31.
inline constexpr uint32_t kDefaultHostIdBase = 0x6FFF0000;
inline constexpr uint32_t kDefaultIdCount = 65536;

struct IdRange {
  uint32_t host_base = kDefaultHostIdBase;
  uint32_t count = kDefaultIdCount;
  bool operator==(const IdRange&) const = default;
};

// Checks count >= 1 (ids 0..count-1 must include root) and that the range
// neither wraps nor reaches uid 4294967295 (-1) nor maps host root.
Status ValidateIdRange(const IdRange& r);

// "0 <host_base> <count>\n", the content of uid_map and gid_map.
std::string IdMapLine(const IdRange& r);

// Writes uid_map and gid_map of `pid` (a child just cloned with
// CLONE_NEWUSER); setgroups stays allowed so the sandbox can run su/sudo.
Status WriteIdMaps(pid_t pid, const IdRange& r);

// A user namespace that exists only to carry a mapping: the userns fd an
// idmapped mount is made with (mount_setattr(MOUNT_ATTR_IDMAP)). Creating one
// costs a short-lived child; the runtime keeps one per daemon and hands it
// to every sandbox (SandboxSpec.idmap), tests make their own.
class MappingUserns {
 public:
  static Result<std::shared_ptr<const MappingUserns>> Create(const IdRange& range);
  int fd() const { return fd_.get(); }
  const IdRange& range() const { return range_; }

 private:
  MappingUserns(UniqueFd fd, IdRange r) : fd_(std::move(fd)), range_(r) {}
  UniqueFd fd_;
  IdRange range_;
};

// A detached clone (open_tree(OPEN_TREE_CLONE)) of the mount at dir_fd,
// idmapped with `userns_fd` when it is >= 0. Not recursive: overlay layers
// never cross mounts. `what` names it in errors.
Result<UniqueFd> CloneMount(int dir_fd, int userns_fd, bool recursive, const std::string& what);

// For the scope of the object, the calling thread's filesystem ids are the
// host ids of the sandbox's root (setfsuid/setfsgid are per thread), with
// its effective capabilities kept: what the runtime creates through an
// idmapped mount or in a tmpfs the sandbox mounted (the action files) must
// be owned by an id that exists there, or the kernel refuses (EOVERFLOW).
// The overlay's mounter credentials are taken this way too: overlayfs does
// its copy-ups with them.
class ScopedFsIds {
 public:
  explicit ScopedFsIds(const IdRange& r);
  ~ScopedFsIds();
  ScopedFsIds(const ScopedFsIds&) = delete;
  ScopedFsIds& operator=(const ScopedFsIds&) = delete;
  const Status& status() const { return status_; }

 private:
  uint32_t old_uid_ = 0, old_gid_ = 0;
  bool changed_ = false;
  Status status_;
};

}  // namespace specula::sandbox
