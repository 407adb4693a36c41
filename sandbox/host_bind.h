// Binds from the host, taken by the PARENT as detached mount trees
// (open_tree(OPEN_TREE_CLONE)) while it is still in the host's namespaces,
// and attached by the sandbox's init with move_mount.
//
// Why not bind from the old root inside the child: by then the child is in
// its new network namespace, and namespaced kernel objects are resolved in
// the namespace of whoever looks them up. A bind of /proc/sys/net/core/X made
// there binds the branch's private knob, so a lossy write never reaches the
// host. A tree cloned in the parent holds the host's object itself.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula::sandbox {

struct HostBindTree {
  UniqueFd tree;       // detached mount (OPEN_TREE_CLOEXEC); closing it dissolves the clone
  bool is_dir = false;
};

// Resolves `host_path` (absolute) without following any symlink (openat2
// RESOLVE_NO_SYMLINKS, and a symlink as last component is refused too),
// clones the mount at it (recursively for a directory) and, if read_only,
// makes the whole clone read-only with mount_setattr. Always nosuid and
// nodev. With userns_fd >= 0 the clone is idmapped with it (a sandbox with
// a user namespace sees the host's owners). invalid_argument for a symlink
// anywhere on the path.
Result<HostBindTree> CloneHostBind(const std::string& host_path, bool read_only, int userns_fd = -1);

// Attaches detached trees onto paths inside a sandbox, from a short-lived
// helper that enters the mount namespace of the sandbox's init: the
// sandbox's root in a user namespace may not attach the host's clones
// itself. Each target is resolved inside the sandbox's root without
// following any symlink (the upper dir and layers are the sandbox's to
// shape); the tree fds stay the caller's.
struct BindTarget {
  int tree = -1;
  std::string path;  // absolute, inside the sandbox
};
Status AttachInto(pid_t init_pid, const std::vector<BindTarget>& targets);

// A HostBindTree attached at a fresh path of the host's mount namespace, for
// tools that take a path rather than a mount fd: `criu restore --external
// mnt[KEY]:PATH` resolves PATH after it has entered the restored network
// namespace, so the original /proc/sys path would name the branch's knob,
// while the staged mount is the host's object itself. Unmounted (detached)
// and its mount point removed on destruction.
class StagedBind {
 public:
  StagedBind() = default;
  // `path` must not exist; its parent must. Consumes tree.tree.
  static Result<StagedBind> Attach(HostBindTree tree, const std::string& path);
  StagedBind(StagedBind&& o) noexcept : path_(std::exchange(o.path_, {})), is_dir_(o.is_dir_) {}
  StagedBind& operator=(StagedBind&& o) noexcept;
  StagedBind(const StagedBind&) = delete;
  StagedBind& operator=(const StagedBind&) = delete;
  ~StagedBind() { Release(); }
  const std::string& path() const { return path_; }

 private:
  void Release();
  std::string path_;  // empty: nothing staged
  bool is_dir_ = false;
};

}  // namespace specula::sandbox
