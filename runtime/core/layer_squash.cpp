#include "runtime/core/layer_squash.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "common/files.h"
#include "common/unique_fd.h"
#include "runtime/apply/apply.h"

namespace specula::core {
namespace {

constexpr const char* kOpaque = "trusted.overlay.opaque";
// A layer is a sealed upper: the same bound as a promote to the base.
constexpr int kMaxLayerDepth = apply::kMaxUpperDepth;

bool IsOpaque(const std::string& dir) {
  char v[4];
  ssize_t n = ::lgetxattr(dir.c_str(), kOpaque, v, sizeof(v));
  return n == 1 && v[0] == 'y';
}

Status CopyXattrs(const std::string& src, const std::string& dst) {
  ssize_t n = ::llistxattr(src.c_str(), nullptr, 0);
  if (n < 0) return Error::FromErrno("listxattr " + src);
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(src.c_str(), names.data(), names.size());
  if (n < 0) return Error::FromErrno("listxattr " + src);
  for (size_t off = 0; off < static_cast<size_t>(n);) {
    const char* name = names.data() + off;
    off += std::strlen(name) + 1;
    ssize_t vn = ::lgetxattr(src.c_str(), name, nullptr, 0);
    if (vn < 0) return Error::FromErrno(std::string("getxattr ") + name + " " + src);
    std::string value(static_cast<size_t>(vn), '\0');
    vn = ::lgetxattr(src.c_str(), name, value.data(), value.size());
    if (vn < 0) return Error::FromErrno(std::string("getxattr ") + name + " " + src);
    if (::lsetxattr(dst.c_str(), name, value.data(), static_cast<size_t>(vn), 0) != 0) {
      return Error::FromErrno(std::string("setxattr ") + name + " " + dst);
    }
  }
  return Status::Ok();
}

// Owner, then mode (chown clears setuid bits), xattrs, then times.
Status CopyMeta(const std::string& src, const struct stat& sb, const std::string& dst) {
  if (::lchown(dst.c_str(), sb.st_uid, sb.st_gid) != 0) return Error::FromErrno("chown " + dst);
  if (!S_ISLNK(sb.st_mode) && ::chmod(dst.c_str(), sb.st_mode & 07777) != 0) {
    return Error::FromErrno("chmod " + dst);
  }
  SPECULA_TRY(CopyXattrs(src, dst));
  struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return Error::FromErrno("utimes " + dst);
  return Status::Ok();
}

Status CopyFileData(const std::string& src, const std::string& dst) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return Error::FromErrno("open " + src);
  UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return Error::FromErrno("create " + dst);
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
    if (n < 0) return Error::FromErrno("copy " + src);
    if (n == 0) break;
  }
  return Status::Ok();
}

class Squasher {
 public:
  // Copies the non-directory `src` to `dst` (which does not exist).
  Status CopyLeaf(const std::string& src, const struct stat& sb, const std::string& dst) {
    auto key = std::make_pair(sb.st_dev, sb.st_ino);
    if (sb.st_nlink > 1) {
      auto it = links_.find(key);
      if (it != links_.end()) {
        if (::link(it->second.c_str(), dst.c_str()) != 0) return Error::FromErrno("link " + dst);
        return Status::Ok();
      }
    }
    if (S_ISREG(sb.st_mode)) {
      SPECULA_TRY(CopyFileData(src, dst));
    } else if (S_ISLNK(sb.st_mode)) {
      std::string target(static_cast<size_t>(sb.st_size) + 1, '\0');
      ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
      if (n < 0) return Error::FromErrno("readlink " + src);
      target.resize(static_cast<size_t>(n));
      if (::symlink(target.c_str(), dst.c_str()) != 0) return Error::FromErrno("symlink " + dst);
    } else if (::mknod(dst.c_str(), sb.st_mode, sb.st_rdev) != 0) {
      return Error::FromErrno("mknod " + dst);
    }
    SPECULA_TRY(CopyMeta(src, sb, dst));
    if (sb.st_nlink > 1) links_[key] = dst;
    return Status::Ok();
  }

  // Lays the directory `src` (of a higher layer) over `dst` (the merge so far).
  // `depth`: how far `src` is below its layer's root. A layer is a sealed
  // upper, shaped by its branch at will; this recurses once per level, so
  // a deeper tree is refused (the same bound as a promote to the base).
  Status MergeDir(const std::string& src, const std::string& dst, int depth = 0) {
    if (depth > kMaxLayerDepth) {
      return Error(Code::kInvalidArgument, "layer nests directories deeper than " +
                                               std::to_string(kMaxLayerDepth) + " levels, at " +
                                               src.substr(0, 200) + (src.size() > 200 ? "..." : ""))
          .WithHint("a layer of this session holds a tree deeper than squashing walks");
    }
    DIR* d = ::opendir(src.c_str());
    if (d == nullptr) return Error::FromErrno("opendir " + src);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& name : names) {
      std::string sp = src + "/" + name, dp = dst + "/" + name;
      struct stat sb, db;
      if (::lstat(sp.c_str(), &sb) != 0) return Error::FromErrno("stat " + sp);
      bool have = ::lstat(dp.c_str(), &db) == 0;
      if (S_ISDIR(sb.st_mode)) {
        bool opaque = IsOpaque(sp);
        if (have && S_ISDIR(db.st_mode) && !opaque) {
          SPECULA_TRY(MergeDir(sp, dp, depth + 1));
          SPECULA_TRY(CopyMeta(sp, sb, dp));
          continue;
        }
        if (have) SPECULA_TRY(RemoveTree(dp));
        if (::mkdir(dp.c_str(), 0700) != 0) return Error::FromErrno("mkdir " + dp);
        SPECULA_TRY(MergeDir(sp, dp, depth + 1));
        SPECULA_TRY(CopyMeta(sp, sb, dp));
        // A dir over a whiteout or a non-dir of a lower layer hid whatever
        // the base has there; without those layers, opacity must say so.
        if (have && !opaque && ::lsetxattr(dp.c_str(), kOpaque, "y", 1, 0) != 0) {
          return Error::FromErrno("set opaque " + dp);
        }
        continue;
      }
      if (have) SPECULA_TRY(RemoveTree(dp));
      // Whiteouts are copied like any leaf: they must go on hiding the base.
      SPECULA_TRY(CopyLeaf(sp, sb, dp));
    }
    return Status::Ok();
  }

  void NextLayer() { links_.clear(); }

 private:
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // within the current layer
};

}  // namespace

Status SquashLayers(const std::vector<std::string>& layers, const std::string& out_dir) {
  if (layers.empty()) return Error(Code::kInvalidArgument, "squash: no layers");
  if (::mkdir(out_dir.c_str(), 0755) != 0) return Error::FromErrno("squash: mkdir " + out_dir);
  Squasher sq;
  for (const auto& l : layers) {
    SPECULA_TRY_CTX(sq.MergeDir(l, out_dir), "squash " + l);
    struct stat sb;
    if (::lstat(l.c_str(), &sb) != 0) return Error::FromErrno("stat " + l);
    SPECULA_TRY(CopyMeta(l, sb, out_dir));
    sq.NextLayer();
  }
  return Status::Ok();
}

}  // namespace specula::core
