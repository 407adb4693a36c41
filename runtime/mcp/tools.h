// specula's MCP tools (docs/mcp.md): bash (an action.commit in the server's
// session), checkpoints, diff, rollback and branches, each a call of the
// daemon's wire contract (runtime/api/wire.h) through a Backend. Daemon
// errors become tool errors (isError, with the daemon's kind and hint);
// arguments that do not match a tool's input schema are protocol errors.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "runtime/api/wire.h"
#include "runtime/mcp/server.h"
#include "runtime/rpc/client.h"

namespace specula::mcp {

// How the tools reach speculad: one JSON-RPC call of the wire contract. Must
// be safe to call from several threads at once.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<Json> Call(std::string_view method, const Json& params) = 0;
  // The same, handing the daemon's notifications for this call (e.g. a
  // streaming commit's action.output) to on_notification as they arrive.
  // A backend that cannot (the default) just calls: no notification comes.
  virtual Result<Json> CallNotifying(std::string_view method, const Json& params,
                                     const rpc::NotificationHandler& on_notification) {
    (void)on_notification;
    return Call(method, params);
  }
  // Whether CallNotifying delivers notifications.
  virtual bool streams() const { return false; }
};

// A typed call: a request of the wire contract in, its response out.
template <api::WireRequest Request>
Result<typename Request::Response> CallDaemon(Backend& backend, const Request& request) {
  SPECULA_ASSIGN_OR_RETURN(Json reply, backend.Call(Request::kMethod, api::ToJson(request)));
  return api::FromJson<typename Request::Response>(reply, Request::kMethod);
}

// The Backend of `specula mcp`: a new connection to the daemon's socket for
// every call (rpc::Client), so calls run in parallel and a restarted daemon
// is simply found again.
class DaemonBackend : public Backend {
 public:
  explicit DaemonBackend(std::string socket) : socket_(std::move(socket)) {}
  Result<Json> Call(std::string_view method, const Json& params) override;
  Result<Json> CallNotifying(std::string_view method, const Json& params,
                             const rpc::NotificationHandler& on_notification) override;
  bool streams() const override { return true; }
  const std::string& socket() const { return socket_; }
  // Bounds every later call (0, the default: wait as long as a commit runs).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ms_ = timeout.count(); }

 private:
  std::string socket_;
  std::atomic<int64_t> timeout_ms_{0};
};

// The server's session: an existing one (`session` set), or one created with
// `create` on first need (at start, or at the first tool call when the
// daemon was not reachable then).
struct SessionOptions {
  std::string session;
  api::CreateSessionRequest create;
};

class SpeculaTools : public ToolHandler {
 public:
  SpeculaTools(Backend& backend, SessionOptions options);

  // The session's id: created (or, for an attached one, checked) on first use.
  Result<std::string> Session();
  // Whether this server created its session (and so may destroy it).
  bool created() const;
  // Destroys the session this server created, if any.
  Status DestroyCreated();

  std::vector<ToolSpec> Tools() const override;
  // The client's name (clientInfo.name: "claude-code", ...) becomes the
  // agent of the session's transparent speculation when --agent gave none,
  // so the daemon learns each MCP client's habits across its sessions.
  void OnInitialize(const Json& params) override;
  Result<ToolResult> Call(const std::string& name, const Json& arguments, const CallContext& ctx) override;

 private:
  Result<ToolResult> Bash(const Json& args, const CallContext& ctx);
  Result<ToolResult> Checkpoints(const Json& args);
  Result<ToolResult> Diff(const Json& args);
  Result<ToolResult> Rollback(const Json& args);
  Result<ToolResult> Branches(const Json& args);

  Backend& backend_;
  SessionOptions options_;
  mutable std::mutex mu_;
  std::string session_;  // "" until known
  bool checked_ = false;
  bool created_ = false;
};

// A daemon error as a tool error: its kind, message and hint, in words.
ToolResult ToolError(const Error& error);

// The text a model reads for each tool's result (also for tests).
std::string RenderCommit(const api::CommitResponse& r);
std::string RenderCheckpoints(const std::vector<api::Checkpoint>& checkpoints, const std::string& head);
std::string RenderBranches(const std::vector<api::BranchSummary>& branches);
std::string RenderDiff(const std::string& what, const std::vector<api::DiffFile>& files);

}  // namespace specula::mcp
