// The Environment backed by speculad, through the daemon's client library
// (runtime/rpc/client.h over the wire contract runtime/api/wire.h), so the
// agents link nothing of the runtime's internals. One session per
// environment: created by Create, destroyed by the destructor.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agents/environment.h"
#include "runtime/api/wire.h"
#include "runtime/rpc/client.h"

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

  const std::string& session() const { return session_; }
  const std::string& head() const { return head_; }

 private:
  DaemonEnvironment(DaemonEnvironmentOptions options, rpc::Client client)
      : options_(std::move(options)), client_(std::move(client)) {}

  DaemonEnvironmentOptions options_;
  rpc::Client client_;
  std::string session_;
  std::string head_;
  // Each branch id as the daemon sent it (a JSON-RPC peer may use numbers),
  // so branch.show sends back exactly that value.
  std::map<BranchId, api::Json> branch_ids_;
};

// The agent's view of an action.commit reply.
CommitResult ToCommitResult(const api::CommitResponse& reply);
// Decodes an action.commit result object (exposed for tests).
Result<CommitResult> ParseCommitResult(const api::Json& result);

}  // namespace specula::agents
