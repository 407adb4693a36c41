// How a child reports failure after fork/clone, where allocation and locks
// are forbidden: it writes one fixed-size ChildFailure to a CLOEXEC pipe and
// calls _exit. The parent reads the pipe: EOF (the exec closed it) means
// success; a record becomes an Error ("<step>: strerror(err)").
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/unique_fd.h"

namespace specula {

struct ChildFailure {
  char step[56];  // static description of the failing step, NUL-terminated
  int sys_errno;
};

// Async-signal-safe: only write(2) and _exit(2).
[[noreturn]] inline void ChildFail(int report_fd, const char* step, int err = errno) {
  ChildFailure f{};
  size_t n = 0;
  while (step[n] != '\0' && n + 1 < sizeof(f.step)) {
    f.step[n] = step[n];
    ++n;
  }
  f.sys_errno = err;
  ssize_t w = ::write(report_fd, &f, sizeof(f));
  (void)w;
  ::_exit(127);
}

// Reads the child's report. Ok if the pipe closed with nothing written.
inline Status ReadChildReport(int report_fd, const char* what) {
  ChildFailure f{};
  ssize_t n;
  do {
    n = ::read(report_fd, &f, sizeof(f));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return Status::Ok();
  if (n != static_cast<ssize_t>(sizeof(f))) {
    return Error(Code::kInternal, std::string(what) + ": short report from child");
  }
  f.step[sizeof(f.step) - 1] = '\0';
  return Error::FromErrno(std::string(what) + ": " + f.step, f.sys_errno);
}

}  // namespace specula
