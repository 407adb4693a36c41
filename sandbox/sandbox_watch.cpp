#include "sandbox/sandbox_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"
#include "sandbox/cgroup.h"

namespace specula::sandbox {

std::string InstanceCgroupParent(const std::string& state_dir) {
  uint32_t h = 2166136261u;  // FNV-1a: short, stable, no dependency
  for (unsigned char c : state_dir) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "i-%08x", h);
  return std::string("specula/") + buf;
}

namespace {

// The watch's work after the daemon is gone, all without allocation (the
// strings were built before the fork).
constexpr int kPopulatedWaitMs = 10000;

// True once cgroup.events says "populated 0" (or cannot be read: the
// directory is gone).
bool Unpopulated(const char* events) {
  int fd = ::open(events, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* p = std::strstr(buf, "populated ");
  return p == nullptr || p[10] == '0';
}

// Copies the name of one subdirectory of `fd` into `name`; false if none.
bool FirstSubdir(int fd, char (&name)[256]) {
  // glibc's dirent64 has the kernel's linux_dirent64 layout.
  alignas(struct dirent64) char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) return false;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_type != DT_DIR || std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
      size_t len = ::strnlen(d->d_name, sizeof(name) - 1);
      std::memcpy(name, d->d_name, len);
      name[len] = '\0';
      return true;
    }
  }
}

// rmdir of every directory below `name` (depth-first) and of it: cgroup
// directories hold only the kernel's interface files, which rmdir ignores.
// Dying tasks keep a directory busy for a moment, hence the retries.
bool RemoveCgroupTree(int parent_fd, const char* name, int depth) {
  if (depth > 8) return false;  // sandboxes nest two levels at most
  int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  char child[256];
  bool ok = true;
  while (ok && FirstSubdir(fd, child)) ok = RemoveCgroupTree(fd, child, depth + 1);
  ::close(fd);
  for (int i = 0; ok && i < 1000; ++i) {
    if (::unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    ::usleep(2000);
  }
  return false;
}

[[noreturn]] void Watch(int daemon_fd, int kill_fd, int lock_fd, const char* events,
                        const std::vector<std::string>& instance_dirs, const std::vector<std::string>& ancestors) {
  pollfd p{daemon_fd, POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  (void)!::write(kill_fd, "1", 1);
  // Give the subtree back once it is empty, unless a new daemon already
  // holds the state dir: it owns the subtree now (its crash recovery and
  // its own watch take over). Holding the lock while removing keeps a new
  // daemon from creating its subtree under our feet (it waits for us:
  // daemon.cpp).
  for (int waited = 0; waited < kPopulatedWaitMs && !Unpopulated(events); waited += 5) ::usleep(5000);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (lock_fd >= 0 && ::fcntl(lock_fd, F_SETLK, &lock) == 0) {
    for (const std::string& dir : instance_dirs) (void)RemoveCgroupTree(AT_FDCWD, dir.c_str(), 0);
    for (const std::string& dir : ancestors) (void)::rmdir(dir.c_str());  // only if no one else's
  }
  ::_exit(0);
}

}  // namespace

Result<pid_t> StartSandboxWatch(const std::string& cgroup_parent, const std::string& lock_path) {
  SPECULA_ASSIGN_OR_RETURN(CgroupLayout layout, DetectCgroupLayout());
  const std::string dir = layout.v2_root + "/" + cgroup_parent;
  // Another instance's watch or close may prune an empty shared parent
  // ("specula") between two mkdirs: then again (RemoveCgroupParent).
  Status made;
  for (int attempt = 0; attempt < 8; ++attempt) {
    made = MakeDirs(dir, 0755);
    if (made.ok() || made.error().sys_errno() != ENOENT) break;
  }
  SPECULA_TRY_CTX(std::move(made), "sandbox watch");
  UniqueFd kill_fd(::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
  if (!kill_fd) {
    return Error::FromErrno("open " + dir + "/cgroup.kill")
        .WithHint("cgroup.kill needs Linux 5.14 or later (specula doctor)");
  }
  UniqueFd daemon(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
  if (!daemon) return Error::FromErrno("pidfd_open of the daemon");
  // The watch opens the state dir's lock itself, after the fork: POSIX
  // record locks belong to processes and closing *any* fd of the file drops
  // them, so an open (and close) of it here would silently release the
  // daemon's own lock (a second daemon then took the state dir). In the
  // watch it can be taken only once the daemon is gone.
  const char* lock_file = lock_path.empty() ? nullptr : lock_path.c_str();
  // Everything the watch needs later, built now: after the fork it only
  // makes system calls.
  const std::string events = dir + "/cgroup.events";
  const std::vector<std::string> instance_dirs = CgroupParentDirs(layout, cgroup_parent);
  const std::vector<std::string> ancestors = CgroupParentAncestors(layout, cgroup_parent);
  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno("fork sandbox watch");
  if (pid == 0) {
    // The watch: no allocation, no locks. Its own session so a terminal's
    // ^C for the daemon does not also end the watch; shutdown signals stay
    // blocked as in the daemon. Nothing but its three fds stays open.
    ::setsid();
    ::prctl(PR_SET_NAME, "speculad-watch", 0, 0, 0);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    int keep[2] = {daemon.get(), kill_fd.get()};
    std::sort(std::begin(keep), std::end(keep));
    int next = 3;
    for (int fd : keep) {
      if (fd > next) ::close_range(next, fd - 1, 0);
      next = fd + 1;
    }
    ::close_range(next, ~0U, 0);
    const int lock_fd = lock_file ? ::open(lock_file, O_RDWR | O_CLOEXEC | O_NOFOLLOW) : -1;
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
    Watch(daemon.get(), kill_fd.get(), lock_fd, events.c_str(), instance_dirs, ancestors);
  }
  return pid;
}

}  // namespace specula::sandbox
