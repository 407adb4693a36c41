// The one way specula touches files below a directory it does not trust (a
// branch's upper dir, the base a promote writes, lossy paths on the host, a
// sandbox's root): every path is resolved with openat2(2) beneath an open
// directory fd with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS, so no symlink in any component, no "..", no
// absolute path and no /proc magic link can lead outside it. Plus what every
// user of such fds needs: whole reads and writes, relative path joins. The
// runtime's own files, by trusted path, are common/files.h.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula {

// openat2(root, rel, flags | O_CLOEXEC, mode) beneath `root`. `rel` is
// relative ("a/b"); "" opens root itself (a fresh fd the caller owns); an
// absolute `rel` is invalid_argument. A symlink in any component fails with
// ELOOP, the last one included unless `flags` has O_NOFOLLOW (then the last
// component is not resolved: with O_PATH the fd is the symlink itself, other
// opens of it fail). Retried on EINTR and EAGAIN (a rename raced the lookup).
// Errors: "openat2 <rel>: <strerror>" with the errno kept.
Result<UniqueFd> OpenBeneath(int root, const std::string& rel, int flags, mode_t mode = 0);

// Where a symlink in a sandbox's tree must resolve as it would inside it
// (the sandbox's own files, read from the host): openat2 with
// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so an absolute link or ".." stays
// below `root` and no /proc magic link is followed.
Result<UniqueFd> OpenInRoot(int root, const std::string& rel, int flags);

// A trusted-looking absolute host path (a policy's bind source) opened with
// no symlink in any component (RESOLVE_NO_SYMLINKS | NO_MAGICLINKS): what
// is opened is the object the policy names, not where a link points.
// A symlink anywhere fails with ELOOP.
Result<UniqueFd> OpenHostPathNoSymlinks(const std::string& abs_path, int flags);

// The system call under all of the above, for a child after fork/clone: no
// allocation, async-signal-safe. openat2(dirfd, path, flags | O_CLOEXEC)
// with `resolve`, retried on EINTR/EAGAIN; returns the fd or -1 with errno.
int RawOpenat2(int dirfd, const char* path, int flags, mode_t mode, uint64_t resolve) noexcept;

// A directory beneath root for reading and for *at() calls below it; never a
// symlink, the last component included (that fails with ENOTDIR).
inline Result<UniqueFd> OpenDirBeneath(int root, const std::string& rel) {
  return OpenBeneath(root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

// Writes all of `data`, in as few write() calls as the kernel allows (a
// sysctl must receive its value in one write, which a short string is).
Status WriteAll(int fd, std::string_view data);

// Reads to EOF (works for /proc files, whose size is 0). More than `cap`
// bytes: returns "" with *over = true.
Result<std::string> ReadAll(int fd, uint64_t cap, bool* over);

// Relative path joins: JoinRel("a/b", "c") == "a/b/c"; an empty side is
// left out ("" + "c" == "c", "a" + "" == "a").
std::string JoinRel(const std::string& dir, const std::string& rel);
// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string, std::string> SplitParent(const std::string& rel);

// The entry names of the directory open at `dir_fd` (not consumed), sorted,
// without "." and "..". Reads through a fresh fd, so dir_fd's offset is left
// alone. Errors: "open dir", "fdopendir", "readdir", errno kept.
Result<std::vector<std::string>> ListDirAt(int dir_fd);

}  // namespace specula
