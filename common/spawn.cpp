#include "common/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "common/child_report.h"
#include "common/unique_fd.h"

extern char** environ;

namespace specula {
namespace {

Result<std::pair<UniqueFd, UniqueFd>> MakePipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2");
  return std::make_pair(UniqueFd(p[0]), UniqueFd(p[1]));
}

// Builds envp: inherited (unless cleared), with env_set overriding by key.
std::vector<std::string> BuildEnv(const SpawnOptions& o) {
  std::vector<std::string> env;
  if (!o.clear_env) {
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  }
  for (const auto& kv : o.env_set) {
    auto key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env, [&](const std::string& s) { return s.rfind(key, 0) == 0; });
    env.push_back(kv);
  }
  return env;
}

void Append(std::string& buf, const char* data, size_t n, size_t cap, bool& truncated) {
  if (buf.size() >= cap) {
    truncated = truncated || n > 0;
    return;
  }
  size_t take = std::min(n, cap - buf.size());
  buf.append(data, take);
  if (take < n) truncated = true;
}

}  // namespace

Result<SpawnResult> Spawn(const SpawnOptions& o) {
  if (o.argv.empty()) return Error(Code::kInvalidArgument, "spawn: empty argv");
  // Everything the child needs is prepared before fork: it may not allocate.
  std::vector<std::string> env = BuildEnv(o);
  std::vector<char*> argvp, envp;
  for (const auto& a : o.argv) argvp.push_back(const_cast<char*>(a.c_str()));
  argvp.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  SPECULA_ASSIGN_OR_RETURN(auto in, MakePipe());
  SPECULA_ASSIGN_OR_RETURN(auto out, MakePipe());
  SPECULA_ASSIGN_OR_RETURN(auto err, MakePipe());
  SPECULA_ASSIGN_OR_RETURN(auto report, MakePipe());

  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) return Error::FromErrno("spawn " + o.argv[0] + ": fork");
  if (pid == 0) {
    ::setpgid(0, 0);  // own process group, so a timeout kills all of it
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(in.first.get(), 0) < 0 || ::dup2(out.second.get(), 1) < 0 ||
        ::dup2(err.second.get(), 2) < 0) {
      ChildFail(report.second.get(), "dup2 stdio");
    }
    if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) ChildFail(report.second.get(), "chdir");
    if (o.child_setup) {
      int e = o.child_setup(o.child_setup_arg);
      if (e != 0) ChildFail(report.second.get(), "child setup", e);
    }
    // Every inherited fd but stdio and the report pipe (CLOEXEC) goes.
    ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvpe(argvp[0], argvp.data(), envp.data());
    ChildFail(report.second.get(), "exec");
  }
  in.first.Reset();
  out.second.Reset();
  err.second.Reset();
  report.second.Reset();
  Status started = ReadChildReport(report.first.get(), ("spawn " + o.argv[0]).c_str());
  if (!started.ok()) {
    ::waitpid(pid, nullptr, 0);
    return std::move(started).error();
  }

  SpawnResult r;
  // stdin: write what fits without blocking forever; children that don't read
  // stdin get EPIPE, which is ignored.
  if (!o.stdin_data.empty()) {
    ::fcntl(in.second.get(), F_SETFL, O_NONBLOCK);
  }
  size_t in_off = 0;
  if (o.stdin_data.empty()) in.second.Reset();

  auto deadline = start + o.timeout;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    pollfd fds[3] = {{out_open ? out.first.get() : -1, POLLIN, 0},
                     {err_open ? err.first.get() : -1, POLLIN, 0},
                     {in.second ? in.second.get() : -1, POLLOUT, 0}};
    int n = ::poll(fds, 3, ms);
    if (n < 0 && errno != EINTR) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return Error::FromErrno("spawn: poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t k = ::read(fds[i].fd, buf, sizeof(buf));
      if (k <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      if (i == 0) Append(r.out, buf, k, o.output_cap, r.out_truncated);
      else Append(r.err, buf, k, o.output_cap, r.err_truncated);
    }
    if (fds[2].fd >= 0 && fds[2].revents != 0) {
      ssize_t k = ::write(in.second.get(), o.stdin_data.data() + in_off,
                          o.stdin_data.size() - in_off);
      if (k > 0) in_off += k;
      if (k < 0 || in_off >= o.stdin_data.size()) in.second.Reset();
    }
  }
  in.second.Reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // A daemonised grandchild may still hold the group: make sure it ends with us
  // only on timeout (otherwise detached helpers such as `criu restore -d` live on).
  if (r.timed_out) ::kill(-pid, SIGKILL);
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  return r;
}

std::string ErrorLines(const std::string& text, size_t max_lines) {
  std::vector<std::string> all, errs;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    all.push_back(line);
    if (line.find("Error") != std::string::npos || line.find("error") != std::string::npos) {
      errs.push_back(line);
    }
  }
  const auto& src = errs.empty() ? all : errs;
  std::string outs;
  size_t from = src.size() > max_lines ? src.size() - max_lines : 0;
  for (size_t i = from; i < src.size(); ++i) {
    if (!outs.empty()) outs += " | ";
    outs += src[i];
  }
  return outs;
}

}  // namespace specula
