// Test helpers for the eBPF integration tests: a throw-away cgroup2
// directory (removed, with anything left in it killed, even when the test
// fails) and a forked child that waits at a gate until the parent has moved
// it into a cgroup, so everything it does afterwards is attributed there.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "ebpf/cgroup2.h"

namespace specula::ebpf::testing {

class TestCgroup {
 public:
  // Creates <cgroup2 root>/specula-ebpf-test-<pid>-<name> (or below `parent`).
  // On failure path() is empty and error() says why.
  explicit TestCgroup(const std::string& name, const TestCgroup* parent = nullptr) {
    std::string base;
    if (parent != nullptr) {
      base = parent->path();
    } else {
      Result<std::string> root = Cgroup2Root();
      if (!root.ok()) {
        error_ = root.error().ToString();
        return;
      }
      base = *root;
    }
    std::string p = base + "/specula-ebpf-test-" + std::to_string(::getpid()) + "-" + name;
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
      error_ = "mkdir " + p + ": " + std::strerror(errno);
      return;
    }
    path_ = p;
    Result<uint64_t> id = Cgroup2Id(path_);
    if (!id.ok()) {
      error_ = id.error().ToString();
      return;
    }
    id_ = *id;
  }
  ~TestCgroup() {
    if (path_.empty()) return;
    // Kill whatever a failed test left behind, then remove the directory
    // (rmdir fails while a zombie is still a member: retry briefly).
    for (int i = 0; i < 100; ++i) {
      std::ifstream procs(path_ + "/cgroup.procs");
      pid_t pid;
      bool any = false;
      while (procs >> pid) {
        any = true;
        ::kill(pid, SIGKILL);
      }
      if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
      if (!any && errno != EBUSY) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  bool ok() const { return id_ != 0; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  uint64_t id() const { return id_; }

  bool Move(pid_t pid) const {
    std::ofstream f(path_ + "/cgroup.procs");
    f << pid << std::flush;
    return f.good();
  }

 private:
  std::string path_;
  std::string error_;
  uint64_t id_ = 0;
};

// A child process that runs body(arg) once Release() is called and exits with
// its return value. body runs after fork: system calls only, no allocation.
class GatedChild {
 public:
  GatedChild(int (*body)(void*), void* arg) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    UniqueFd rd(p[0]);
    gate_.Reset(p[1]);
    pid_ = ::fork();
    if (pid_ == 0) {
      gate_.Reset();
      char c;
      ssize_t n;
      do {
        n = ::read(rd.get(), &c, 1);
      } while (n < 0 && errno == EINTR);
      if (n != 1) ::_exit(126);
      ::_exit(body(arg));
    }
  }
  ~GatedChild() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      (void)Wait();
    }
  }
  GatedChild(const GatedChild&) = delete;
  GatedChild& operator=(const GatedChild&) = delete;

  pid_t pid() const { return pid_; }
  bool Release() {
    char c = 'g';
    bool ok = ::write(gate_.get(), &c, 1) == 1;
    gate_.Reset();
    return ok;
  }
  // Exit code, or -signal, or -1000 on wait failure. usage (optional): the
  // child's resource use, including the children it waited for.
  int Wait(struct rusage* usage = nullptr) {
    int status = 0;
    pid_t r;
    do {
      r = ::wait4(pid_, &status, 0, usage);
    } while (r < 0 && errno == EINTR);
    waited_ = true;
    if (r != pid_) return -1000;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  UniqueFd gate_;
  bool waited_ = false;
};

}  // namespace specula::ebpf::testing
