#include "agents/daemon_environment.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <spdlog/spdlog.h>

#include "common/paths.h"

namespace specula::agents {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
constexpr size_t kMaxLine = 64u << 20;  // outputs are capped by the daemon; this is a sanity bound

Code CodeFromKind(const std::string& kind, int number) {
  for (int i = 0; i <= static_cast<int>(Code::kInternal); ++i) {
    if (CodeName(static_cast<Code>(i)) == kind) return static_cast<Code>(i);
  }
  // -32000 minus the Code's index (docs/error-model.md).
  int idx = -32000 - number;
  if (idx > 0 && idx <= static_cast<int>(Code::kInternal)) return static_cast<Code>(idx);
  return Code::kInternal;
}

std::string IdString(const Json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

std::vector<std::string> StringList(const Json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  return out;
}

}  // namespace

ActionOutcome ParseOutcome(const Json& r) {
  ActionOutcome o;
  o.exit_code = r.value("exit_code", -1);
  o.signal = r.value("signal", 0);
  o.stdout_text = r.value("stdout", "");
  o.stderr_text = r.value("stderr", "");
  o.truncated = r.value("truncated", false);
  o.duration_ms = r.value("duration_ms", 0.0);
  return o;
}

Result<CommitResult> ParseCommitResult(const Json& r) {
  if (!r.is_object()) return Error(Code::kInternal, "action.commit: result is not an object");
  try {
    CommitResult c;
    c.hit = r.value("hit", false);
    if (r.contains("branch") && !r["branch"].is_null()) c.branch = IdString(r["branch"]);
    c.outcome = ParseOutcome(r);
    c.saved_ms = r.value("saved_ms", 0.0);
    if (r.contains("head") && !r["head"].is_null()) c.head = IdString(r["head"]);
    if (r.contains("lossy_effects")) c.lossy_effects = StringList(r["lossy_effects"]);
    if (r.contains("flags")) c.flags = StringList(r["flags"]);
    return c;
  } catch (const std::exception& e) {
    return Error(Code::kInternal, std::string("action.commit: bad result: ") + e.what());
  }
}

Result<std::unique_ptr<DaemonEnvironment>> DaemonEnvironment::Create(DaemonEnvironmentOptions options) {
  if (options.socket_path.empty()) options.socket_path = kDefaultSocket;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options.socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(Code::kInvalidArgument, "socket path too long: " + options.socket_path);
  }
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error::FromErrno("connect " + options.socket_path)
        .WithHint("is speculad running? (see `specula doctor`)");
  }
  std::unique_ptr<DaemonEnvironment> env(new DaemonEnvironment(std::move(options), std::move(fd)));
  Json params = {{"base", env->options_.base}, {"target", env->options_.target}};
  if (!env->options_.policy.empty()) params["policy"] = env->options_.policy;
  if (!env->options_.name.empty()) params["name"] = env->options_.name;
  SPECULA_ASSIGN_OR_RETURN(Json created, env->Call("session.create", params, env->options_.rpc_timeout));
  if (!created.is_object() || !created.contains("session")) {
    return Error(Code::kInternal, "session.create: no session in reply");
  }
  env->session_ = created["session"];
  if (created.contains("head") && !created["head"].is_null()) env->head_ = IdString(created["head"]);
  for (const auto& cmd : env->options_.setup_commands) {
    SPECULA_ASSIGN_OR_RETURN(CommitResult c, env->Commit(cmd, std::chrono::milliseconds(60000)));
    if (c.outcome.exit_code != 0) {
      return Error(Code::kFailedPrecondition, "session setup `" + cmd + "` exited " +
                                                  std::to_string(c.outcome.exit_code) + ": " +
                                                  c.outcome.stderr_text);
    }
  }
  return env;
}

DaemonEnvironment::~DaemonEnvironment() {
  if (!fd_ || session_.is_null()) return;
  auto r = Call("session.destroy", {{"session", session_}}, options_.rpc_timeout);
  if (!r.ok()) spdlog::warn("session.destroy: {}", r.error().ToString());
}

Result<std::string> DaemonEnvironment::ReadLine(SteadyClock::time_point deadline) {
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > kMaxLine) return Error(Code::kResourceExhausted, "daemon reply too large");
    auto now = SteadyClock::now();
    if (now >= deadline) return Error(Code::kDeadlineExceeded, "no reply from the daemon in time");
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    pollfd p{fd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("poll daemon socket");
    }
    if (n == 0) continue;
    char buf[65536];
    ssize_t k = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("recv from daemon");
    }
    if (k == 0) return Error(Code::kUnavailable, "daemon closed the connection");
    buffer_.append(buf, static_cast<size_t>(k));
  }
}

Result<Json> DaemonEnvironment::Call(const std::string& method, Json params,
                                     std::chrono::milliseconds timeout) {
  int64_t id = next_id_++;
  std::string line;
  try {
    Json req = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
    line = req.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, method + ": " + e.what());
  }
  size_t off = 0;
  while (off < line.size()) {
    ssize_t k = ::send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno(method + ": send");
    }
    off += static_cast<size_t>(k);
  }
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    SPECULA_ASSIGN_OR_RETURN(std::string reply_line, ReadLine(deadline).Context(method));
    Json reply = Json::parse(reply_line, nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
      return Error(Code::kInternal, method + ": reply is not a JSON object");
    }
    // Lines for other ids (e.g. notifications) are not ours.
    if (!reply.contains("id") || reply["id"] != Json(id)) continue;
    try {
      if (reply.contains("error") && reply["error"].is_object()) {
        const Json& e = reply["error"];
        Json data = e.value("data", Json::object());
        if (!data.is_object()) data = Json::object();
        Error err(CodeFromKind(data.value("kind", ""), e.value("code", 0)),
                  method + ": " + e.value("message", "error"), data.value("errno", 0));
        std::string hint = data.value("hint", "");
        if (!hint.empty()) err.WithHint(hint);
        return err;
      }
      if (!reply.contains("result")) return Error(Code::kInternal, method + ": reply without result");
      return reply["result"];
    } catch (const std::exception& ex) {
      return Error(Code::kInternal, method + ": malformed reply: " + ex.what());
    }
  }
}

Result<BranchId> DaemonEnvironment::Speculate(const std::string& command,
                                              std::chrono::milliseconds timeout) {
  SPECULA_ASSIGN_OR_RETURN(Json r, Call("action.speculate",
                                        {{"session", session_},
                                         {"command", command},
                                         {"timeout_ms", timeout.count()}},
                                        options_.rpc_timeout));
  if (!r.is_object() || !r.contains("branch")) {
    return Error(Code::kInternal, "action.speculate: no branch in reply");
  }
  BranchId id = IdString(r["branch"]);
  branch_ids_[id] = r["branch"];
  return id;
}

Result<CommitResult> DaemonEnvironment::Commit(const std::string& command,
                                               std::chrono::milliseconds timeout) {
  SPECULA_ASSIGN_OR_RETURN(Json r, Call("action.commit",
                                        {{"session", session_},
                                         {"command", command},
                                         {"timeout_ms", timeout.count()}},
                                        timeout + options_.rpc_timeout));
  SPECULA_ASSIGN_OR_RETURN(CommitResult c, ParseCommitResult(r));
  if (!c.head.empty()) head_ = c.head;
  branch_ids_.clear();  // every branch of the old head is promoted or discarded
  return c;
}

Status DaemonEnvironment::Abort() {
  auto r = Call("action.abort", {{"session", session_}}, options_.rpc_timeout);
  branch_ids_.clear();
  return r.status();
}

Result<std::optional<ActionOutcome>> DaemonEnvironment::PeekBranch(const BranchId& branch) {
  auto it = branch_ids_.find(branch);
  Json id = it != branch_ids_.end() ? it->second : Json(branch);
  SPECULA_ASSIGN_OR_RETURN(Json r, Call("branch.show", {{"branch", id}}, options_.rpc_timeout));
  if (!r.is_object()) return Error(Code::kInternal, "branch.show: result is not an object");
  std::string state = r.value("state", "");
  if (state == "failed" || state == "discarded") {
    return Error(Code::kAborted, "branch " + branch + " is " + state);
  }
  if (!r.contains("result") || !r["result"].is_object()) return std::optional<ActionOutcome>();
  const Json& res = r["result"];
  // Pre-launching the actor needs the branch's output text. A daemon that
  // only reports sizes (stdout_bytes) cannot support that for non-empty
  // output: say so once (the engine then stops polling this branch; the hit
  // itself still works through action.commit).
  bool has_text = res.contains("stdout") && res.contains("stderr");
  bool empty_output = res.value("stdout_bytes", uint64_t{1}) == 0 && res.value("stderr_bytes", uint64_t{1}) == 0;
  if (!has_text && !empty_output) {
    return Error(Code::kUnavailable, "branch.show: result has no output text");
  }
  try {
    return std::optional<ActionOutcome>(ParseOutcome(res));
  } catch (const std::exception& e) {
    return Error(Code::kInternal, std::string("branch.show: bad result: ") + e.what());
  }
  return std::optional<ActionOutcome>();
}

}  // namespace specula::agents
