#include "runtime/core/session_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "common/safe_fs.h"

namespace specula::core {
namespace {

Error Refuse(const std::string& base, const std::string& why) {
  return Error(Code::kInvalidArgument, "session base " + base + ": " + why)
      .WithHint("a base must be a plain directory tree (a project, a root file system copy, or /); "
                "pass its real path, without symlinks");
}

bool Normalised(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  if (p.back() == '/' || p.find("//") != std::string::npos) return false;
  return p.find("/./") == std::string::npos && p.find("/../") == std::string::npos &&
         !p.ends_with("/.") && !p.ends_with("/..");
}

bool Within(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

}  // namespace

bool IsKernelFilesystem(std::string_view fstype) {
  static constexpr std::array<std::string_view, 18> kTypes = {
      "proc",   "sysfs",    "devtmpfs", "cgroup",  "cgroup2",   "debugfs",     "tracefs", "securityfs", "bpf",
      "configfs", "efivarfs", "pstore", "fusectl", "binfmt_misc", "mqueue", "devpts", "hugetlbfs", "nsfs"};
  return std::find(kTypes.begin(), kTypes.end(), fstype) != kTypes.end();
}

std::string MountFsType(std::string_view text, uint64_t mnt_id) {
  // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the
  // first field is the mount id, the type follows the " - " separator.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? text.npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    uint64_t id = 0;
    auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), id);
    if (ec != std::errc() || id != mnt_id || ptr == line.data()) continue;
    size_t sep = line.find(" - ");
    if (sep == std::string_view::npos) return "";
    std::string_view rest = line.substr(sep + 3);
    return std::string(rest.substr(0, rest.find(' ')));
  }
  return "";
}

Status CheckSessionBase(const std::string& base, const std::string& state_dir) {
  if (!Normalised(base)) {
    return Refuse(base, "must be an absolute path without \".\", \"..\", repeated or trailing slashes");
  }
  if (Within(base, state_dir)) return Refuse(base, "is inside the daemon's state dir " + state_dir);
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::FromErrno("open /");
  // RESOLVE_NO_SYMLINKS on every component, the last one left unresolved
  // (O_NOFOLLOW) so that a symlink there is seen as one.
  auto fd = OpenBeneath(root.get(), base == "/" ? "" : base.substr(1), O_PATH | O_NOFOLLOW);
  if (!fd.ok()) {
    if (fd.error().sys_errno() == ELOOP) return Refuse(base, "its path goes through a symlink");
    if (fd.error().sys_errno() == ENOENT || fd.error().sys_errno() == ENOTDIR) {
      return Refuse(base, "does not exist");
    }
    return std::move(fd).error().Context("session base " + base);
  }
  struct statx stx {};
  if (::statx(fd->get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MNT_ID, &stx) != 0) {
    return Error::FromErrno("statx " + base);
  }
  if (S_ISLNK(stx.stx_mode)) return Refuse(base, "is a symlink");
  if (!S_ISDIR(stx.stx_mode)) return Refuse(base, "is not a directory");
  UniqueFd info(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!info) return Error::FromErrno("open /proc/self/mountinfo");
  bool over = false;
  SPECULA_ASSIGN_OR_RETURN(std::string text, ReadAll(info.get(), 16u << 20, &over));
  std::string fstype = (stx.stx_mask & STATX_MNT_ID) != 0 ? MountFsType(text, stx.stx_mnt_id) : "";
  if (IsKernelFilesystem(fstype)) {
    return Refuse(base, "is on a " + fstype + " file system (kernel state, not files a branch can work on)");
  }
  return {};
}

}  // namespace specula::core
