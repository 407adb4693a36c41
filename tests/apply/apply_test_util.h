// Helpers for the apply tests: temp dirs that remove themselves, a private
// mount namespace so no overlay mount can outlive the test process, real
// overlay mounts to produce real whiteouts/opaque dirs, and tree snapshots
// to compare a base with its expected before/after state.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "common/spawn.h"

namespace specula::apply::testing {

// Mounts made by the test vanish with the process, even if it crashes.
// Calling it again just makes another private namespace.
inline void EnterPrivateMountNamespace() {
  ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS): " << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/var/tmp/specula-apply-test-" + std::to_string(::getpid()) + "-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
  }
  ::chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Runs a shell script with `dir` as cwd; fails the test on a non-zero exit.
inline void Sh(const std::string& dir, const std::string& script) {
  auto r = Spawn({.argv = {"bash", "-ec", script}, .cwd = dir});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->success()) << script << "\n" << r->err;
}

// An overlay mount with the options promote expects of branch overlays.
class OverlayMount {
 public:
  OverlayMount(const std::string& lower, const std::string& upper, const std::string& work,
               const std::string& merged) : merged_(merged) {
    std::filesystem::create_directories(upper);
    std::filesystem::create_directories(work);
    std::filesystem::create_directories(merged);
    std::string opts = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work +
                       ",redirect_dir=off,metacopy=off,index=off";
    mounted_ = ::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()) == 0;
    err_ = errno;
  }
  ~OverlayMount() { Unmount(); }
  OverlayMount(const OverlayMount&) = delete;
  OverlayMount& operator=(const OverlayMount&) = delete;
  bool mounted() const { return mounted_; }
  int error() const { return err_; }
  void Unmount() {
    if (mounted_ && ::umount2(merged_.c_str(), 0) != 0) ::umount2(merged_.c_str(), MNT_DETACH);
    mounted_ = false;
  }

 private:
  std::string merged_;
  bool mounted_ = false;
  int err_ = 0;
};

// What a tree looks like, path -> description. Compares type, permission
// bits, owner, content, symlink target, device number and, for non-dirs,
// the link count (hardlinks). Directory mtimes move with every rename, so
// they are left out; file mtimes are checked by dedicated tests.
inline std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    std::string p = it->path().string();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISREG(st.st_mode)) d << " nlink=" << st.st_nlink << " data=" << ReadFile(p);
    if (S_ISLNK(st.st_mode)) d << " -> " << std::filesystem::read_symlink(p).string();
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) d << " dev=" << major(st.st_rdev) << "," << minor(st.st_rdev);
    out[p.substr(root.size())] = d.str();
  }
  return out;
}

inline std::string DescribeDiff(const std::map<std::string, std::string>& a,
                                const std::map<std::string, std::string>& b) {
  std::ostringstream o;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) o << "  only in first: " << k << " " << v << "\n";
    else if (it->second != v) o << "  differs: " << k << ": " << v << " vs " << it->second << "\n";
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) o << "  only in second: " << k << " " << v << "\n";
  }
  return o.str();
}

}  // namespace specula::apply::testing
