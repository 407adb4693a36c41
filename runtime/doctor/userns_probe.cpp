// The user-namespace probes (docs/doctor.md "userns", "userns.idmap_overlay"):
// what every sandbox of the default policy is built from (docs/sandbox.md
// "User namespace"). runtime/doctor may not link the sandbox library
// (docs/architecture.md), so the probe makes the namespace and the idmapped
// mounts with the raw system calls the sandbox uses, in a forked child
// (child_probe.h): nothing it creates outlives it.
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "common/child_report.h"
#include "runtime/doctor/child_probe.h"
#include "runtime/doctor/kernel_probes.h"

namespace specula::doctor {
namespace {

constexpr int kWrongResult = EPROTO;  // the calls worked but did not do what they must

// What the child needs, prepared by the parent (no allocation after fork).
struct UsernsPaths {
  char map_line[64];   // "0 <base> <count>\n"
  bool idmap_overlay;  // also mount the idmapped overlay
  std::string lower, rw, mnt_lower, mnt_rw, merged, merged_file, options;
};

// "/proc/<pid>/<leaf>" into buf, without allocating.
void ProcPath(char* buf, size_t size, pid_t pid, const char* leaf) {
  char digits[16];
  int n = 0;
  for (unsigned v = static_cast<unsigned>(pid); n == 0 || v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  size_t at = 0;
  for (const char* s = "/proc/"; *s != '\0' && at + 1 < size; ++s) buf[at++] = *s;
  while (n > 0 && at + 1 < size) buf[at++] = digits[--n];
  if (at + 1 < size) buf[at++] = '/';
  for (const char* s = leaf; *s != '\0' && at + 1 < size; ++s) buf[at++] = *s;
  buf[at] = '\0';
}

void WriteFile(int fd, const char* path, const char* text, const char* step) {
  int f = ::open(path, O_WRONLY | O_CLOEXEC);
  if (f < 0) ChildFail(fd, step);
  size_t len = std::strlen(text);
  if (::write(f, text, len) != static_cast<ssize_t>(len)) ChildFail(fd, step);
  ::close(f);
}

// Clones the mount of `dir`, idmaps it with `userns_fd` and attaches it at
// `target`: one layer of a sandbox's overlay.
void IdmapInto(int fd, const char* dir, int userns_fd, const char* target) {
  int tree = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) ChildFail(fd, "open_tree(OPEN_TREE_CLONE)");
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0) {
    ChildFail(fd, "mount_setattr(MOUNT_ATTR_IDMAP)");
  }
  if (::syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    ChildFail(fd, "move_mount of the idmapped tree");
  }
  ::close(tree);
}

void UsernsChild(int fd, const void* arg) {
  const auto& p = *static_cast<const UsernsPaths*>(arg);
  // A grandchild enters a new user namespace and waits; this child (in the
  // initial namespace, as the daemon is) writes its maps, as the sandbox does.
  int ready[2], go[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) ChildFail(fd, "pipe2");
  pid_t gc = ::fork();
  if (gc < 0) ChildFail(fd, "fork");
  if (gc == 0) {
    ::close(go[1]);  // or its own copy would keep the read below from ever seeing EOF
    ::close(ready[0]);
    if (::unshare(CLONE_NEWUSER) != 0) ChildFail(fd, "unshare(CLONE_NEWUSER)");
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    (void)!::read(go[0], &c, 1);  // until the prober is done (EOF when it dies)
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  if (::read(ready[0], &c, 1) != 1) ::_exit(1);  // the grandchild reported its failure
  char path[64];
  ProcPath(path, sizeof(path), gc, "uid_map");
  WriteFile(fd, path, p.map_line, "write uid_map (0x6FFF0000 + 65536)");
  ProcPath(path, sizeof(path), gc, "gid_map");
  WriteFile(fd, path, p.map_line, "write gid_map (0x6FFF0000 + 65536)");
  ProcPath(path, sizeof(path), gc, "ns/user");
  int userns = ::open(path, O_RDONLY | O_CLOEXEC);
  if (userns < 0) ChildFail(fd, "open the user namespace");
  if (p.idmap_overlay) {
    if (::unshare(CLONE_NEWNS) != 0) ChildFail(fd, "unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(fd, "mount --make-rprivate /");
    IdmapInto(fd, p.lower.c_str(), userns, p.mnt_lower.c_str());
    IdmapInto(fd, p.rw.c_str(), userns, p.mnt_rw.c_str());
    if (::mount("overlay", p.merged.c_str(), "overlay", 0, p.options.c_str()) != 0) {
      ChildFail(fd, "mount overlay on idmapped layers");
    }
    // The lower file is root's on disk: through the idmapped layers it must
    // be the namespace's root, host uid 0x6FFF0000.
    struct stat st {};
    if (::stat(p.merged_file.c_str(), &st) != 0) ChildFail(fd, "stat through the overlay");
    if (st.st_uid != kProbeHostIdBase || st.st_gid != kProbeHostIdBase) {
      ChildFail(fd, "a lower file's owner is not mapped through the idmapped overlay", kWrongResult);
    }
  }
  ::close(go[1]);  // the grandchild may go
  int status = 0;
  while (::waitpid(gc, &status, 0) < 0 && errno == EINTR) {
  }
}

// A fresh dir under parent, removed on destruction (the mounts die with the
// child's namespace, so it is plain files by then).
class Scratch {
 public:
  explicit Scratch(std::string path) : path_(std::move(path)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

UsernsPaths MapLine() {
  UsernsPaths p{};
  std::string line = "0 " + std::to_string(kProbeHostIdBase) + " " + std::to_string(kProbeIdCount) + "\n";
  std::memcpy(p.map_line, line.c_str(), std::min(line.size() + 1, sizeof(p.map_line)));
  p.map_line[sizeof(p.map_line) - 1] = '\0';
  return p;
}

}  // namespace

Status ProbeUserNamespace(std::chrono::milliseconds timeout) {
  UsernsPaths p = MapLine();
  p.idmap_overlay = false;
  return RunInChild("user namespace", UsernsChild, &p, timeout);
}

Status ProbeIdmappedOverlay(const std::string& scratch_parent, std::chrono::milliseconds timeout) {
  std::string tmpl = scratch_parent + "/specula-doctor-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Error::FromErrno("idmapped overlay probe: mkdtemp " + tmpl);
  Scratch dir(tmpl);
  UsernsPaths p = MapLine();
  p.idmap_overlay = true;
  const std::string& b = dir.path();
  p.lower = b + "/lower";
  p.rw = b + "/rw";
  p.mnt_lower = b + "/mnt-lower";
  p.mnt_rw = b + "/mnt-rw";
  p.merged = b + "/merged";
  p.merged_file = p.merged + "/f";
  p.options = "lowerdir=" + p.mnt_lower + ",upperdir=" + p.mnt_rw + "/upper,workdir=" + p.mnt_rw + "/work";
  for (const std::string& d : {p.lower, p.rw, p.rw + "/upper", p.rw + "/work", p.mnt_lower, p.mnt_rw, p.merged}) {
    if (::mkdir(d.c_str(), 0755) != 0) return Error::FromErrno("idmapped overlay probe: mkdir " + d);
  }
  int f = ::open((p.lower + "/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (f < 0) return Error::FromErrno("idmapped overlay probe: create a lower file");
  ::close(f);
  if (::chown((p.lower + "/f").c_str(), 0, 0) != 0) return Error::FromErrno("idmapped overlay probe: chown");
  return RunInChild("idmapped overlay", UsernsChild, &p, timeout);
}

}  // namespace specula::doctor
