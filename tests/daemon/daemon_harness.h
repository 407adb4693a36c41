// Test harness for the daemon e2e tests: runs the REAL speculad binary
// (SPECULAD_PATH, set by CMake) on a private socket and state dir in a temp
// dir, the REAL specula CLI (SPECULA_CLI_PATH), and raw socket connections
// for feeding the daemon bytes no well-behaved client would send. Everything
// it starts or creates is stopped and removed in destructors, also when a
// test fails half-way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/spawn.h"
#include "common/unique_fd.h"

namespace specula::testing {

using Json = nlohmann::json;

// A private temp directory, removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Daemon {
 public:
  // Starts speculad --socket <dir>/sock --state-dir <dir>/state plus extra
  // args, and waits until the socket answers daemon.ping.
  // `env`: "K=V" added to the daemon's environment (e.g. SPECULA_CRASH_AT).
  static Result<std::unique_ptr<Daemon>> Start(const std::string& dir, std::vector<std::string> extra = {},
                                               const std::string& name = "d",
                                               const std::vector<std::string>& env = {});
  // SIGKILL if still running, then reaps it; also kills processes it left
  // behind (sandboxes forked from it that outlived a Kill9).
  ~Daemon();

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  std::string Log() const;  // its stderr so far
  // SIGTERM and wait (up to `wait`); returns the exit status, or -1 on timeout.
  int Terminate(std::chrono::milliseconds wait = std::chrono::seconds(20));
  // SIGKILL of the daemon alone, as a crash: its sandbox processes live on
  // (the restarted daemon must cope) until this object is destroyed.
  void Kill9();
  bool Alive();
  // Waits for the daemon to exit by itself (a crash point); its raw wait
  // status, or nullopt if it still runs after `wait`.
  std::optional<int> WaitExit(std::chrono::milliseconds wait);

 private:
  Daemon() = default;
  pid_t pid_ = -1;
  std::vector<pid_t> orphans_;
  std::string socket_, state_dir_, log_path_;
};

// Starts speculad without waiting for it (for start-up failure tests);
// returns its exit status, or -1 if it was still running after `wait`.
int RunDaemonToExit(const std::string& dir, std::vector<std::string> args, std::string* log,
                    std::chrono::milliseconds wait = std::chrono::seconds(20));

// Mount points at or below `dir` (parents before children).
std::vector<std::string> MountsUnder(const std::string& dir);
// Live processes of sandboxes whose root overlay was built under `dir`.
std::vector<pid_t> SandboxProcessesUsing(const std::string& dir);

// Runs the specula CLI with the given args (socket first unless empty).
SpawnResult RunCli(const std::string& socket, std::vector<std::string> args, std::vector<std::string> env = {},
                   int (*child_setup)(void*) = nullptr, void* arg = nullptr);

// A raw connection to the daemon.
class RawConn {
 public:
  static Result<RawConn> Connect(const std::string& socket);
  Status Send(std::string_view bytes);
  // The next line (without '\n'), nullopt on EOF, error on timeout.
  Result<std::optional<std::string>> ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends one request line and returns the parsed reply line.
  Result<Json> Roundtrip(const Json& request);
  int fd() const { return fd_.get(); }

 private:
  explicit RawConn(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  std::string buf_;
};

}  // namespace specula::testing
