// Runs a call with a small stack and few fds, so a test can tell a walk
// that is bounded in both from one that recurses (a stack frame per level)
// or keeps an fd per level: the latter crashes or fails with EMFILE here
// on a tree a few hundred levels deep, where the daemon's 8 MB worker stack
// and its fd limit would only give out some thousands of levels later.
#pragma once

#include <pthread.h>
#include <sys/resource.h>

#include <cstdlib>
#include <functional>

namespace specula::testing {

inline constexpr size_t kBoundedStack = 256 << 10;
inline constexpr rlim_t kBoundedFds = 256;

inline void RunBounded(std::function<void()> fn) {
  struct rlimit old {};
  if (::getrlimit(RLIMIT_NOFILE, &old) != 0) std::abort();
  struct rlimit low = old;
  if (low.rlim_cur > kBoundedFds) low.rlim_cur = kBoundedFds;
  if (::setrlimit(RLIMIT_NOFILE, &low) != 0) std::abort();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kBoundedStack);
  pthread_t t;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<std::function<void()>*>(p))();
    return nullptr;
  };
  if (::pthread_create(&t, &attr, trampoline, &fn) != 0) std::abort();
  ::pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
  ::setrlimit(RLIMIT_NOFILE, &old);
}

}  // namespace specula::testing
