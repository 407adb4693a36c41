// The Environment backed by speculad: a small blocking JSON-RPC 2.0 client
// (one JSON object per line on the daemon's Unix socket) written here so the
// agents library does not link the runtime. One session per environment:
// created by Create, destroyed by the destructor.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agents/environment.h"
#include "common/unique_fd.h"

namespace specula::agents {

struct DaemonEnvironmentOptions {
  std::string socket_path;       // empty: common/paths.h kDefaultSocket
  std::string base = "/";        // the session's base tree
  std::string target = "layer";  // where promotes go: layer | base
  // Absolute path of a policy file; empty: the daemon's default. Branches
  // should run at lower CPU priority: use a policy whose [resources]
  // cpu_weight is below the committed path's (default 100).
  std::string policy;
  std::string name;              // session name (for `specula` listings)
  // Committed right after session.create, before any measured action
  // (e.g. `export W=/tmp/specula-demo/x; mkdir -p "$W"; cd "$W"`).
  std::vector<std::string> setup_commands;
  std::chrono::milliseconds rpc_timeout{10000};  // per request, plus an action's own timeout
};

class DaemonEnvironment : public Environment {
 public:
  static Result<std::unique_ptr<DaemonEnvironment>> Create(DaemonEnvironmentOptions options);
  ~DaemonEnvironment() override;  // session.destroy, errors logged
  DaemonEnvironment(const DaemonEnvironment&) = delete;
  DaemonEnvironment& operator=(const DaemonEnvironment&) = delete;

  Result<BranchId> Speculate(const std::string& command, std::chrono::milliseconds timeout) override;
  Result<CommitResult> Commit(const std::string& command, std::chrono::milliseconds timeout) override;
  Status Abort() override;
  Result<std::optional<ActionOutcome>> PeekBranch(const BranchId& branch) override;
  std::string Name() const override { return "daemon:" + options_.socket_path; }
  bool SupportsSpeculation() const override { return true; }

  const nlohmann::json& session() const { return session_; }
  const std::string& head() const { return head_; }

  // One JSON-RPC call: sends the request line, reads lines until the reply
  // with the same id. A JSON-RPC error becomes an Error whose code comes
  // from error.data.kind.
  Result<nlohmann::json> Call(const std::string& method, nlohmann::json params,
                              std::chrono::milliseconds timeout);

 private:
  DaemonEnvironment(DaemonEnvironmentOptions options, UniqueFd fd)
      : options_(std::move(options)), fd_(std::move(fd)) {}
  Result<std::string> ReadLine(std::chrono::steady_clock::time_point deadline);

  DaemonEnvironmentOptions options_;
  UniqueFd fd_;
  std::string buffer_;  // bytes read past the last line
  int64_t next_id_ = 1;
  nlohmann::json session_;
  std::string head_;
  std::map<BranchId, nlohmann::json> branch_ids_;  // our string -> the daemon's id value
};

// Parses an action.commit result object (exposed for tests).
Result<CommitResult> ParseCommitResult(const nlohmann::json& result);
// Parses a branch result object {exit_code, signal, stdout, stderr, truncated, duration_ms}.
ActionOutcome ParseOutcome(const nlohmann::json& result);

}  // namespace specula::agents
