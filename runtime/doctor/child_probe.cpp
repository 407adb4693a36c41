#include "runtime/doctor/child_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "common/child_report.h"
#include "common/unique_fd.h"

namespace specula::doctor {
namespace {

// Reaps pid, retrying on EINTR. Returns the wait status.
int Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

Status RunInChild(const char* what, ChildProbeFn fn, const void* arg,
                  std::chrono::milliseconds timeout) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno(std::string(what) + ": pipe2");
  UniqueFd read_end(p[0]), write_end(p[1]);

  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno(std::string(what) + ": fork");
  if (pid == 0) {
    // Own process group: on timeout the parent kills the probe's grandchildren too.
    ::setpgid(0, 0);
    read_end.Reset();
    fn(write_end.get(), arg);
    ::_exit(0);
  }
  write_end.Reset();

  // The pipe reaches EOF once the child and every grandchild that inherited
  // the write end are gone; a report record arrives before that.
  pollfd pfd{read_end.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    int err = errno;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    Reap(pid);
    if (n < 0) return Error::FromErrno(std::string(what) + ": poll", err);
    return Error(Code::kDeadlineExceeded,
                 std::string(what) + ": probe did not finish within " +
                     std::to_string(timeout.count()) + " ms");
  }
  Status report = ReadChildReport(read_end.get(), what);
  // A failed grandchild may leave the child waiting on nothing; make sure
  // none of the probe's processes outlives it.
  if (!report.ok()) ::kill(-pid, SIGKILL);
  int status = Reap(pid);
  if (!report.ok()) return report;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  if (WIFSIGNALED(status)) {
    return Error(Code::kInternal, std::string(what) + ": probe killed by signal " +
                                      std::to_string(WTERMSIG(status)));
  }
  return Error(Code::kInternal, std::string(what) + ": probe exited with status " +
                                    std::to_string(WEXITSTATUS(status)));
}

}  // namespace specula::doctor
