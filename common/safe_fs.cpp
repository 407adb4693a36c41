#include "common/safe_fs.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace specula {

int RawOpenat2(int dirfd, const char* path, int flags, mode_t mode, uint64_t resolve) noexcept {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;  // openat2 refuses a mode without O_CREAT
  how.resolve = resolve;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return static_cast<int>(fd);
}

Result<UniqueFd> OpenBeneath(int root, const std::string& rel, int flags, mode_t mode) {
  if (!rel.empty() && rel.front() == '/') return Error(Code::kInvalidArgument, "absolute path " + rel);
  const char* path = rel.empty() ? "." : rel.c_str();
  int fd = RawOpenat2(root, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  if (fd < 0) return Error::FromErrno(std::string("openat2 ") + path);
  return UniqueFd(fd);
}

Result<UniqueFd> OpenInRoot(int root, const std::string& rel, int flags) {
  const char* path = rel.empty() ? "." : rel.c_str();
  int fd = RawOpenat2(root, path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (fd < 0) return Error::FromErrno(std::string("openat2 ") + path + " in root");
  return UniqueFd(fd);
}

Result<UniqueFd> OpenHostPathNoSymlinks(const std::string& abs_path, int flags) {
  if (abs_path.empty() || abs_path.front() != '/') {
    return Error(Code::kInvalidArgument, "path '" + abs_path + "' must be absolute");
  }
  int fd = RawOpenat2(AT_FDCWD, abs_path.c_str(), flags, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  if (fd < 0) return Error::FromErrno("open " + abs_path);
  return UniqueFd(fd);
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("write");
    if (n == 0) return Error(Code::kInternal, "write: no progress");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<std::string> ReadAll(int fd, uint64_t cap, bool* over) {
  std::string out;
  char buf[16384];
  *over = false;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > cap) {
      *over = true;
      out.clear();
      break;
    }
  }
  return out;
}

std::string JoinRel(const std::string& dir, const std::string& rel) {
  if (rel.empty()) return dir;
  if (dir.empty()) return rel;
  return dir + "/" + rel;
}

std::pair<std::string, std::string> SplitParent(const std::string& rel) {
  auto pos = rel.rfind('/');
  if (pos == std::string::npos) return {"", rel};
  return {rel.substr(0, pos), rel.substr(pos + 1)};
}

Result<std::vector<std::string>> ListDirAt(int dir_fd) {
  // fdopendir takes ownership, so give it its own fd.
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("open dir");
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    Error e = Error::FromErrno("fdopendir");
    ::close(fd);
    return e;
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return Error::FromErrno("readdir", err);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace specula
