#include "ebpf/cgroup2.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cstring>

namespace specula::ebpf {

namespace {

bool IsCgroup2(const char* path) {
  struct statfs fs {};
  return ::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

}  // namespace

Result<std::string> Cgroup2Root() {
  for (const char* p : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (IsCgroup2(p)) return std::string(p);
  }
  return Error(Code::kUnavailable, "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
      .WithHint("mount -t cgroup2 none /sys/fs/cgroup/unified");
}

Result<uint64_t> Cgroup2Id(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return Error(Code::kInvalidArgument, "cgroup2 path must be absolute: '" + dir + "'");
  }
  if (!IsCgroup2(dir.c_str())) {
    return Error(Code::kInvalidArgument, dir + " is not in a cgroup2 file system");
  }
  // struct file_handle ends in a flexible array: give it 8 bytes of room,
  // which is what kernfs uses for the 64-bit id.
  alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + sizeof(uint64_t)] = {};
  auto* fh = reinterpret_cast<struct file_handle*>(buf);
  fh->handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, dir.c_str(), fh, &mount_id, 0) == 0 &&
      fh->handle_bytes == sizeof(uint64_t)) {
    uint64_t id = 0;
    std::memcpy(&id, buf + sizeof(struct file_handle), sizeof(id));
    return id;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error::FromErrno("stat " + dir);
  return static_cast<uint64_t>(st.st_ino);
}

}  // namespace specula::ebpf
