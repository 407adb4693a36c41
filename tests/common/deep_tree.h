// Trees far deeper than PATH_MAX, as a hostile branch makes them, for the
// tests of the walkers that must cope with them: a scratch directory that
// goes whatever its depth, and a directory chain made by relative calls
// (the paths are too long for anything else).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/spawn.h"

namespace specula::testing {

// A fresh directory under /var/tmp (a real disk, not a size-capped tmpfs),
// removed with rm -rf, which copes with any depth and does not depend on
// the walkers under test: a failing test leaves nothing.
class DeepScratch {
 public:
  explicit DeepScratch(const std::string& tag) {
    std::string tmpl = "/var/tmp/specula-" + tag + "-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~DeepScratch() { (void)Spawn({.argv = {"rm", "-rf", path_}}); }
  DeepScratch(const DeepScratch&) = delete;
  DeepScratch& operator=(const DeepScratch&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// `levels` nested directories "d" below the directory open at `dir` (not
// consumed). Returns the deepest, open (the caller closes it), or -1 with
// errno set.
inline int MakeChainAt(int dir, int levels) {
  int cur = ::dup(dir);
  for (int i = 0; i < levels && cur >= 0; ++i) {
    if (::mkdirat(cur, "d", 0755) != 0) {
      ::close(cur);
      return -1;
    }
    int next = ::openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(cur);
    cur = next;
  }
  return cur;
}

// The same below the existing directory `dir`, with a file "bottom" holding
// "deep\n" in the deepest. False with errno set on failure.
inline bool MakeChainWithBottom(const std::string& dir, int levels) {
  int top = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) return false;
  int cur = MakeChainAt(top, levels);
  ::close(top);
  if (cur < 0) return false;
  int f = ::openat(cur, "bottom", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ::close(cur);
  if (f < 0) return false;
  const bool wrote = ::write(f, "deep\n", 5) == 5;
  ::close(f);
  return wrote;
}

}  // namespace specula::testing
