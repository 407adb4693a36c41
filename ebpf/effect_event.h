// One traced effect of a branch, as user space sees it (decoded from the
// ring-buffer record of ebpf/effects.h). Plain data: the journal stores it,
// the checkpoint decision and the nondeterminism flag read it.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace specula::ebpf {

enum class EffectOp : uint32_t {
  kOpen = 1,        // open for write/create/truncate (flags say which)
  kOpenRandom = 2,  // open of /dev/random or /dev/urandom
  kUnlink = 3,
  kRmdir = 4,
  kRename = 5,      // path -> path2
  kMkdir = 6,
  kChmod = 7,
  kChown = 8,
  kLink = 9,        // path (existing) -> path2 (new name)
  kSymlink = 10,    // path (target text) -> path2 (new name)
  kTruncate = 11,
  kExec = 12,
  kConnect = 13,
  kBind = 14,
  kSend = 15,       // sendto/sendmsg with an explicit destination
  kFork = 16,       // child_tgid is the new process
  kExit = 17,       // the whole process (tgid) exited
  kGetrandom = 18,
  kRecv = 19,       // recvfrom/recvmsg; socket_family says from what
};

std::string_view ToString(EffectOp op);

struct EffectAddr {
  int family = 0;  // AF_INET, AF_INET6, AF_UNIX or 0 (none)
  uint16_t port = 0;  // host byte order
  std::array<uint8_t, 16> ip{};  // IPv4 in the first 4 bytes
  // "10.0.0.1:80", "[::1]:53", "unix" or "" (AF_UNIX paths are in path).
  std::string ToString() const;
  // 127/8, ::1, ::ffff:127/104, 0.0.0.0, ::
  bool IsLoopback() const;
};

struct EffectEvent {
  EffectOp op = EffectOp::kOpen;
  std::string path;   // as the process passed it (relative to fd/cwd), or the exec'd file
  std::string path2;  // second name: rename/link/symlink
  pid_t pid = 0;      // kernel tid (host pid namespace)
  pid_t tgid = 0;     // kernel tgid (host pid namespace)
  int64_t result = 0; // syscall return (negative errno); exit: wait status
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  uint64_t cgroup_id = 0;         // cgroup2 id of the acting task
  uint64_t traced_cgroup_id = 0;  // the registered cgroup (itself or an ancestor)
  EffectAddr addr;
  uint64_t flags = 0;  // open/at/rename/send/recv flags
  uint32_t mode = 0;   // create/chmod mode; chown: uid
  int fd = -100;       // dirfd of *at calls (AT_FDCWD), or fd of f* calls
  uint64_t aux = 0;    // fork: child tgid; recv: socket family; getrandom: bytes; truncate: length
  bool path_truncated = false;
  std::string comm;

  bool ok() const { return result >= 0; }
  pid_t child_tgid() const { return static_cast<pid_t>(aux); }  // kFork
  int socket_family() const { return static_cast<int>(aux); }   // kRecv
  // One line for logs and the journal: "rename a -> b = 0 (pid 12 mv)".
  std::string ToString() const;
};

}  // namespace specula::ebpf
