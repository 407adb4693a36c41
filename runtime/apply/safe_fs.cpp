#include "runtime/apply/safe_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "common/files.h"

namespace specula::apply {

Result<UniqueFd> OpenTrustedDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open " + path);
  return UniqueFd(fd);
}

Status CheckRegularFs(int dir_fd, const std::string& rel) {
  struct statfs sfs {};
  if (::fstatfs(dir_fd, &sfs) != 0) return Error::FromErrno("fstatfs " + rel);
  switch (static_cast<unsigned long>(sfs.f_type)) {
    case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC:
    case DEBUGFS_MAGIC: case TRACEFS_MAGIC: case SECURITYFS_MAGIC: case BPF_FS_MAGIC:
    case DEVPTS_SUPER_MAGIC: case SELINUX_MAGIC: case EFIVARFS_MAGIC: case PSTOREFS_MAGIC:
      return Error(Code::kPermissionDenied,
                   "refusing to write into pseudo filesystem at " + (rel.empty() ? "." : rel));
    default:
      return Status::Ok();
  }
}

bool IsCleanRelPath(const std::string& rel) {
  if (rel.empty() || rel.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    size_t end = rel.find('/', start);
    std::string comp = rel.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (comp.empty() || comp == "." || comp == "..") return false;
    if (end == std::string::npos) return true;
    start = end + 1;
  }
}

Result<std::optional<struct stat>> LstatAt(int dir_fd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return std::optional(st);
  if (errno == ENOENT) return std::optional<struct stat>();
  return Error::FromErrno("lstat " + name);
}

Status RemoveTreeAt(int dir_fd, const std::string& name) {
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return Status::Ok();
  if (errno != EISDIR && errno != EPERM) return Error::FromErrno("unlink " + name);
  // A directory: empty it through an fd opened without following symlinks.
  // The tree may be a branch's (a staged copy of its upper, pre-images):
  // EmptyDirectoryAt is iterative with bounded fds, so no depth fails it.
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open " + name);
  UniqueFd sub(fd);
  SPECULA_TRY(EmptyDirectoryAt(sub.get(), name));
  sub.Reset();
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Error::FromErrno("rmdir " + name);
  }
  return Status::Ok();
}

Status FsyncFd(int fd, const std::string& what) {
  if (::fsync(fd) != 0) return Error::FromErrno("fsync " + what);
  return Status::Ok();
}

Status SyncFs(int fd, const std::string& what) {
  if (::syncfs(fd) != 0) return Error::FromErrno("syncfs " + what);
  return Status::Ok();
}

Result<std::vector<Xattr>> ReadXattrs(int fd) {
  std::vector<Xattr> out;
  std::string names;
  for (;;) {
    ssize_t n = ::flistxattr(fd, nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return out;
      return Error::FromErrno("flistxattr");
    }
    names.resize(static_cast<size_t>(n));
    n = ::flistxattr(fd, names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;  // grew meanwhile
    if (n < 0) return Error::FromErrno("flistxattr");
    names.resize(static_cast<size_t>(n));
    break;
  }
  size_t pos = 0;
  while (pos < names.size()) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty()) continue;
    SPECULA_ASSIGN_OR_RETURN(auto value, GetXattr(fd, name.c_str()));
    if (value) out.push_back({name, std::move(*value)});
  }
  return out;
}

Result<std::optional<std::string>> GetXattr(int fd, const char* name) {
  for (;;) {
    ssize_t n = ::fgetxattr(fd, name, nullptr, 0);
    if (n < 0) {
      if (errno == ENODATA || errno == ENOTSUP) return std::optional<std::string>();
      return Error::FromErrno(std::string("fgetxattr ") + name);
    }
    std::string v(static_cast<size_t>(n), '\0');
    n = ::fgetxattr(fd, name, v.data(), v.size());
    if (n < 0 && errno == ERANGE) continue;
    if (n < 0) return Error::FromErrno(std::string("fgetxattr ") + name);
    v.resize(static_cast<size_t>(n));
    return std::optional(std::move(v));
  }
}

Result<bool> XattrEquals(int fd, const char* name, const std::string& want) {
  SPECULA_ASSIGN_OR_RETURN(auto v, GetXattr(fd, name));
  return v.has_value() && *v == want;
}

Status RenameAt(int from_dir, const std::string& from, int to_dir, const std::string& to,
                unsigned flags, const std::string& what) {
  if (::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), flags) != 0) {
    return Error::FromErrno("rename " + what);
  }
  return Status::Ok();
}

namespace {

// Copies [off, off + len) of in_fd to the same offsets of out_fd.
Status CopyRange(int in_fd, int out_fd, off_t off, uint64_t len, bool* use_cfr, std::vector<char>* buf) {
  while (len > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(len, uint64_t{1} << 30));
    ssize_t n;
    if (*use_cfr) {
      loff_t in_off = off, out_off = off;
      n = ::copy_file_range(in_fd, &in_off, out_fd, &out_off, want, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        *use_cfr = false;  // fall back to plain reads and writes
        buf->resize(1 << 17);
        continue;
      }
      if (n < 0) return Error::FromErrno("copy_file_range");
    } else {
      n = ::pread(in_fd, buf->data(), std::min(buf->size(), want), off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::FromErrno("read");
      for (ssize_t done = 0; n > 0 && done < n;) {
        ssize_t w = ::pwrite(out_fd, buf->data() + done, static_cast<size_t>(n - done), off + done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Error::FromErrno("write");
        done += w;
      }
    }
    if (n == 0) return Status::Ok();  // the file shrank under us: what is left is a hole
    off += n;
    len -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

}  // namespace

// Only the data extents are copied (SEEK_DATA / SEEK_HOLE) and the size is
// set at the end, so a sparse file stays sparse: a branch's 1 GiB file with
// 4 KiB of data costs 4 KiB against its disk limit and must cost no more on
// the host (copying it byte for byte filled the host's disk).
Result<uint64_t> CopyData(int in_fd, int out_fd) {
  struct stat st {};
  if (::fstat(in_fd, &st) != 0) return Error::FromErrno("fstat");
  const off_t size = st.st_size;
  uint64_t total = 0;
  bool use_cfr = true;
  std::vector<char> buf;
  for (off_t off = 0; off < size;) {
    off_t data = ::lseek(in_fd, off, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    off_t hole = data < 0 ? size : ::lseek(in_fd, data, SEEK_HOLE);
    if (data < 0) {
      if (errno != EINVAL) return Error::FromErrno("lseek SEEK_DATA");
      data = off;  // no extent map here: all of it is data
    }
    if (hole < 0) return Error::FromErrno("lseek SEEK_HOLE");
    hole = std::min(hole, size);
    if (hole <= data) break;
    SPECULA_TRY(CopyRange(in_fd, out_fd, data, static_cast<uint64_t>(hole - data), &use_cfr, &buf));
    total += static_cast<uint64_t>(hole - data);
    off = hole;
  }
  if (::ftruncate(out_fd, size) != 0) return Error::FromErrno("ftruncate");
  return total;
}

std::string RandomId() {
  unsigned char bytes[8];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    else if (errno != EINTR) abort();  // getrandom cannot fail on Linux >= 3.17 after boot
  }
  char hex[17];
  for (size_t i = 0; i < sizeof(bytes); ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 16);
}

}  // namespace specula::apply
