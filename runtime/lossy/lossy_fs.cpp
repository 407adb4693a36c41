#include "runtime/lossy/lossy_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

namespace specula::lossy::internal {
namespace {

using FileImage = LossyJournal::FileImage;

constexpr int kMaxDepth = 32;  // deeper trees under a lossy path are refused

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

// Kernel pseudo-filesystems: their contents are the kernel's state, reset at boot.
bool OnKernelFs(int fd) {
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) return false;
  switch (static_cast<unsigned long>(sfs.f_type)) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
      return true;
    default:
      return false;
  }
}

void FillStat(const struct stat& st, FileImage& img) {
  img.mode = st.st_mode & 07777;
  img.uid = st.st_uid;
  img.gid = st.st_gid;
  img.size = static_cast<uint64_t>(st.st_size);
  img.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Reads an opened regular file into img (content if within the cap).
Status Capture(int fd, uint64_t cap, FileImage& img) {
  bool over = false;
  auto content = ReadAll(fd, cap, &over);
  if (!content.ok()) {
    // A knob without a read handler, or denied: the journal cannot observe it.
    if (content.error().sys_errno() == EACCES || content.error().sys_errno() == EPERM ||
        content.error().sys_errno() == EINVAL || content.error().sys_errno() == EIO) {
      img.unreadable = true;
      return Status::Ok();
    }
    return std::move(content).error();
  }
  if (!over) {
    img.captured = true;
    img.content = std::move(*content);
  }
  return Status::Ok();
}

Status Walk(int dirfd, const std::string& rel, const SnapshotLimits& limits, int depth,
            std::vector<FileImage>& out) {
  if (depth > kMaxDepth) return Error(Code::kResourceExhausted, rel + ": directory tree too deep");
  int listing = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) return Error::FromErrno("open " + rel);
  UniqueDir dir(::fdopendir(listing));
  if (!dir) {
    int err = errno;
    ::close(listing);
    return Error::FromErrno("fdopendir " + rel, err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(dir.get())) {
    std::string name = de->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string child_rel = JoinRel(rel, name);
    UniqueFd path_fd(::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!path_fd) {
      if (errno == ENOENT) continue;  // removed while we looked
      return Error::FromErrno("open " + child_rel);
    }
    struct stat st {};
    if (::fstat(path_fd.get(), &st) != 0) return Error::FromErrno("stat " + child_rel);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;  // symlinks, devices: not ours to read
    if (out.size() >= limits.max_files) {
      return Error(Code::kResourceExhausted, "more than " + std::to_string(limits.max_files) + " files");
    }
    FileImage img;
    img.rel = child_rel;
    img.is_dir = S_ISDIR(st.st_mode);
    FillStat(st, img);
    img.kernel_fs = OnKernelFs(path_fd.get());
    if (img.is_dir) {
      UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return Error::FromErrno("open " + child_rel);
      out.push_back(std::move(img));
      SPECULA_TRY(Walk(sub.get(), child_rel, limits, depth + 1, out));
      continue;
    }
    UniqueFd file(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!file) {
      if (errno != EACCES && errno != EPERM) return Error::FromErrno("open " + child_rel);
      img.unreadable = true;
    } else {
      SPECULA_TRY_CTX(Capture(file.get(), limits.file_cap, img), "read " + child_rel);
    }
    out.push_back(std::move(img));
  }
  return Status::Ok();
}

bool Printable(const std::string& s) {
  if (s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t';
  });
}

std::string OneLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\t', ' ');
  return s;
}

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%o", mode);
  return buf;
}

}  // namespace

Result<std::vector<FileImage>> Snapshot(int root, const std::string& rel, const SnapshotLimits& limits) {
  std::vector<FileImage> out;
  auto path_fd = OpenBeneath(root, rel, O_PATH);
  if (!path_fd.ok()) {
    if (path_fd.error().sys_errno() == ENOENT) return out;
    return std::move(path_fd).error();
  }
  struct stat st {};
  if (::fstat(path_fd->get(), &st) != 0) return Error::FromErrno("stat " + rel);
  FileImage img;
  img.is_dir = S_ISDIR(st.st_mode);
  FillStat(st, img);
  img.kernel_fs = OnKernelFs(path_fd->get());
  if (img.is_dir) {
    SPECULA_ASSIGN_OR_RETURN(UniqueFd dir, OpenBeneath(root, rel, O_RDONLY | O_DIRECTORY));
    out.push_back(std::move(img));
    SPECULA_TRY(Walk(dir.get(), "", limits, 0, out));
    return out;
  }
  if (S_ISREG(st.st_mode)) {
    auto file = OpenBeneath(root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!file.ok()) {
      int err = file.error().sys_errno();
      if (err != EACCES && err != EPERM) return std::move(file).error();
      img.unreadable = true;
    } else {
      SPECULA_TRY_CTX(Capture(file->get(), limits.file_cap, img), "read " + rel);
    }
  }
  out.push_back(std::move(img));
  return out;
}

bool Differs(const FileImage& a, const FileImage& b) {
  if (a.is_dir != b.is_dir || a.mode != b.mode || a.uid != b.uid || a.gid != b.gid) return true;
  if (a.is_dir) return false;  // entries appearing or going are reported on their own
  if (a.unreadable || b.unreadable) return false;  // cannot observe
  if (a.captured && b.captured) return a.content != b.content;
  return a.size != b.size || a.mtime_ns != b.mtime_ns;
}

std::string DescribeChange(const FileImage& before, const FileImage& after) {
  std::string out;
  if (before.mode != after.mode) out = "mode " + Octal(before.mode) + " -> " + Octal(after.mode);
  if (!before.is_dir && before.captured && after.captured && before.content != after.content) {
    if (!out.empty()) out += ", ";
    if (Printable(before.content) && Printable(after.content)) {
      out += OneLine(before.content) + " -> " + OneLine(after.content);
    } else {
      out += "content changed (" + std::to_string(before.content.size()) + " -> " +
             std::to_string(after.content.size()) + " bytes)";
    }
  } else if (!before.is_dir && (before.size != after.size || before.mtime_ns != after.mtime_ns) &&
             out.empty()) {
    out = "content changed (" + std::to_string(before.size) + " -> " + std::to_string(after.size) + " bytes)";
  }
  if (out.empty() && (before.uid != after.uid || before.gid != after.gid)) out = "owner changed";
  return out;
}

std::string RelOf(const std::string& absolute) {
  size_t i = 0;
  while (i < absolute.size() && absolute[i] == '/') ++i;
  return absolute.substr(i);
}

}  // namespace specula::lossy::internal
