#include "sandbox/overlay.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/files.h"

namespace specula::sandbox {
namespace {

std::string Parent(const std::string& p) { return std::filesystem::path(p).parent_path().string(); }
std::string Base(const std::string& p) { return std::filesystem::path(p).filename().string(); }

Result<UniqueFd> OpenDir(int at, const std::string& path, const std::string& what) {
  UniqueFd fd(::openat(at, path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + what + " " + path);
  return fd;
}

// What overlayfs said about a failed fsconfig (its log, one message per read).
std::string FsLog(int fsfd) {
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fsfd, buf, sizeof(buf));
    if (n <= 0) break;
    if (!out.empty()) out += "; ";
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status Config(int fsfd, unsigned cmd, const char* key, const char* value, int aux, const std::string& what) {
  if (::syscall(SYS_fsconfig, fsfd, cmd, key, value, aux) == 0) return Status::Ok();
  int err = errno;
  std::string log = FsLog(fsfd);
  return Error::FromErrno("overlay " + what + (log.empty() ? "" : " (" + log + ")"), err);
}

// An empty directory that is no path anywhere: the root of a detached,
// read-only, 4 KiB tmpfs.
Result<UniqueFd> EmptyLayer() {
  UniqueFd fs(static_cast<int>(::syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC)));
  if (!fs) return Error::FromErrno("fsopen tmpfs for an empty layer");
  SPECULA_TRY(Config(fs.get(), FSCONFIG_SET_STRING, "size", "4k", 0, "empty layer size"));
  SPECULA_TRY(Config(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0, "empty layer"));
  UniqueFd mnt(static_cast<int>(::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY)));
  if (!mnt) return Error::FromErrno("fsmount the empty layer");
  return mnt;
}

// The layer fds and a configured (not yet created) overlay context.
struct Context {
  std::vector<UniqueFd> fds;
  UniqueFd fs;
};

Result<Context> Configure(const OverlayLayers& l, const OverlayMountOptions& o) {
  Context c;
  const int userns = o.idmap ? o.idmap->fd() : -1;
  c.fs.Reset(static_cast<int>(::syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC)));
  if (!c.fs) return Error::FromErrno("fsopen overlay").WithHint("the kernel has no overlayfs; see `specula doctor`");
  SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_STRING, "source", o.source.c_str(), 0, "source"));
  // Without an upper dir overlayfs wants two lower layers, and refuses the
  // same one twice (ELOOP): a lone layer gets an empty one on top, the root
  // of a detached read-only tmpfs that lives as long as the overlay.
  if (l.upper.empty() && l.lowers.size() == 1) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd empty, EmptyLayer());
    SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_FD, "lowerdir+", nullptr, empty.get(), "empty top layer"));
    c.fds.push_back(std::move(empty));
  }
  for (const auto& dir : l.lowers) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(AT_FDCWD, dir, "lower layer"));
    if (userns >= 0) {
      SPECULA_ASSIGN_OR_RETURN(fd, CloneMount(fd.get(), userns, false, dir));
    }
    SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_FD, "lowerdir+", nullptr, fd.get(), "lower layer " + dir));
    c.fds.push_back(std::move(fd));
  }
  if (!l.upper.empty()) {
    UniqueFd upper, work;
    if (userns >= 0) {
      if (Parent(l.upper) != Parent(l.work)) {
        return Error(Code::kInvalidArgument, "idmapped overlay: upper " + l.upper + " and work " + l.work +
                                                 " must be in one directory");
      }
      SPECULA_ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(AT_FDCWD, Parent(l.upper), "upper's parent"));
      SPECULA_ASSIGN_OR_RETURN(UniqueFd tree, CloneMount(parent.get(), userns, false, Parent(l.upper)));
      SPECULA_ASSIGN_OR_RETURN(upper, OpenDir(tree.get(), Base(l.upper), "upper dir"));
      SPECULA_ASSIGN_OR_RETURN(work, OpenDir(tree.get(), Base(l.work), "work dir"));
      c.fds.push_back(std::move(tree));
    } else {
      SPECULA_ASSIGN_OR_RETURN(upper, OpenDir(AT_FDCWD, l.upper, "upper dir"));
      SPECULA_ASSIGN_OR_RETURN(work, OpenDir(AT_FDCWD, l.work, "work dir"));
    }
    SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_FD, "upperdir", nullptr, upper.get(), "upper dir " + l.upper));
    SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_FD, "workdir", nullptr, work.get(), "work dir " + l.work));
    c.fds.push_back(std::move(upper));
    c.fds.push_back(std::move(work));
  }
  SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_STRING, "index", o.index ? "on" : "off", 0, "index"));
  if (!o.sync_on_unmount && !l.upper.empty()) {
    SPECULA_TRY(Config(c.fs.get(), FSCONFIG_SET_FLAG, "volatile", nullptr, 0, "volatile"));
  }
  return c;
}

Status Create(int fsfd, const OverlayMountOptions& o) {
  std::optional<ScopedFsIds> ids;
  if (o.idmap) {
    ids.emplace(o.idmap->range());
    if (!ids->status().ok()) return ids->status();
  }
  if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) return Status::Ok();
  int err = errno;
  std::string log = FsLog(fsfd);
  return Error::FromErrno("create overlay" + (log.empty() ? "" : " (" + log + ")"), err);
}

}  // namespace

Result<OverlayMount> OverlayMount::Mount(const OverlayLayers& layers, const std::string& target,
                                         const OverlayMountOptions& opts) {
  if (layers.lowers.empty()) return Error(Code::kInvalidArgument, "overlay on " + target + ": no lower layer");
  if (layers.upper.empty() != layers.work.empty()) {
    return Error(Code::kInvalidArgument, "overlay on " + target + ": upper and work dir go together");
  }
  SPECULA_ASSIGN_OR_RETURN(Context c, Configure(layers, opts));
  // Refusals worth another try, each after its cause is gone:
  //  - EBUSY: a lower layer is still marked in use as the upper dir of an
  //    overlay that is gone from our namespace but not yet from the kernel.
  //    A layer is the sealed upper of a destroyed branch; a process that
  //    copied the host's mount table while that branch was mounted (CRIU's
  //    private namespace, another sandbox being set up) keeps its overlay
  //    alive until it drops the copy, a few ms to a CRIU run later. Wait
  //    for that instead of failing (seen ~1 in 300 commits under load), up
  //    to kBusyWait: a CRIU run under load takes seconds (the bound used to
  //    be 3 s, a suspect of one CI failure that could not be reproduced).
  //  - EINVAL with <work>/work/incompat/volatile: a volatile attempt that
  //    got past the work dir left the marker, and the kernel refuses a
  //    marked work dir (after a crash its upper might be half written).
  //    A refused attempt wrote nothing to the upper, and a reused work dir
  //    (a caller's: crash recovery deletes a branch whole) was unmounted
  //    cleanly, so the marker means nothing here: it goes before any retry,
  //    as overlayfs itself empties <work>/work at every other mount.
  //  - ESTALE: index=on ties <work>/index to the upper it was made with; a
  //    work dir reused over a new upper is refused. Its entries are of no
  //    use then: a sandbox links up every alias the index held before
  //    unmounting. Retry once without them.
  // A failed create leaves the context unusable, so each try configures anew.
  Status made = Create(c.fs.get(), opts);
  bool dropped_index = false;
  int marker_retries = 0;  // EINVAL can have other causes: bounded like the rest
  constexpr auto kBusyStep = std::chrono::milliseconds(20);
  constexpr int kBusyWait = 10000 / 20;  // 10 s: a loaded CRIU run or two
  int busy_waits = 0;
  for (; !made.ok();) {
    const int err = made.error().sys_errno();
    std::error_code ec;
    bool cleared_marker = false;
    if (!layers.work.empty() && std::filesystem::exists(layers.work + "/work/incompat/volatile", ec)) {
      // The runtime's own dir (fd walk, same device only, result checked).
      cleared_marker = RemoveTree(layers.work + "/work").ok();
    }
    if (err == EBUSY && busy_waits < kBusyWait) {
      ++busy_waits;
      std::this_thread::sleep_for(kBusyStep);
    } else if (err == EINVAL && cleared_marker && marker_retries++ < 2) {
      spdlog::info("overlay on {}: emptied work dir {} of an earlier volatile mount", target, layers.work);
    } else if (err == ESTALE && !dropped_index && !layers.work.empty() &&
               std::filesystem::exists(layers.work + "/index", ec) && RemoveTree(layers.work + "/index").ok()) {
      dropped_index = true;
      spdlog::warn("overlay on {}: dropped the stale index of work dir {}", target, layers.work);
    } else {
      break;
    }
    SPECULA_ASSIGN_OR_RETURN(c, Configure(layers, opts));
    made = Create(c.fs.get(), opts);
  }
  // How long a lower layer stayed busy is worth seeing (the daemon's log).
  if (busy_waits >= 50) {
    spdlog::warn("overlay on {}: a lower layer stayed busy for {} ms ({})", target,
                 busy_waits * kBusyStep.count(), made.ok() ? "then mounted" : "gave up");
  } else if (busy_waits > 0) {
    spdlog::debug("overlay on {}: a lower layer was busy for {} ms", target, busy_waits * kBusyStep.count());
  }
  if (!made.ok()) {
    Error e = std::move(made).error().Context("mount overlay on " + target);
    if (e.sys_errno() == ESTALE) e.WithHint("the upper dir was used before over a different lower layer stack");
    if (e.sys_errno() == EBUSY) {
      e.WithHint("a lower layer is still the upper dir of an overlay held by another mount namespace "
                 "(a process that ran `unshare -m` while a branch was mounted); see dmesg");
    }
    return e;
  }
  uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (opts.read_only || layers.upper.empty()) attrs |= MOUNT_ATTR_RDONLY;
  UniqueFd mnt(static_cast<int>(::syscall(SYS_fsmount, c.fs.get(), FSMOUNT_CLOEXEC, attrs)));
  if (!mnt) return Error::FromErrno("fsmount overlay for " + target);
  if (::syscall(SYS_move_mount, mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return Error::FromErrno("attach overlay at " + target);
  }
  return OverlayMount(target);
}

OverlayMount& OverlayMount::operator=(OverlayMount&& o) noexcept {
  if (this != &o) {
    (void)Unmount();
    target_ = std::exchange(o.target_, {});
  }
  return *this;
}

OverlayMount::~OverlayMount() {
  Status st = Unmount();
  if (!st.ok()) spdlog::warn("sandbox: {}", st.ToString());
}

Status OverlayMount::Unmount() {
  if (target_.empty()) return Status::Ok();
  for (int i = 0; i < 50; ++i) {
    if (::umount2(target_.c_str(), UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT) {
      target_.clear();
      return Status::Ok();
    }
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Still referenced (e.g. a process on the host has its cwd inside): detach.
  if (::umount2(target_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
    return Error::FromErrno("unmount " + target_);
  }
  target_.clear();
  return Status::Ok();
}

}  // namespace specula::sandbox
