// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting; see runtime/cli/cli.cpp.
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "runtime/cli/mcp_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "common/unique_fd.h"
#include "common/version.h"
#include "runtime/cli/output.h"
#include "runtime/mcp/server.h"
#include "runtime/mcp/streamable_http.h"
#include "runtime/mcp/tools.h"

namespace specula::cli {
namespace {

struct McpOptions {
  std::string base = "/", target = "layer", policy, name, session;
  std::string speculation;  // "": off
  uint32_t k = 3;
  std::string agent;  // the speculator learns this agent across sessions
  bool keep_session = false;
  uint64_t progress_ms = 1000;
  std::string listen;      // "": stdio; else Streamable HTTP on this loopback HOST:PORT
  std::string token_file;  // with listen: where the bearer token is written (0600)
};

// The bearer token of the HTTP transport: $SPECULA_MCP_TOKEN when set (a
// client configured with a fixed one), else a new random one; written to
// `file` (0600, never through a symlink) or, without a file, to stderr.
Result<std::string> HttpToken(const std::string& file) {
  std::string token;
  if (const char* env = std::getenv("SPECULA_MCP_TOKEN"); env != nullptr && *env != '\0') {
    token = env;
    if (token.size() < 16) return Error(Code::kInvalidArgument, "SPECULA_MCP_TOKEN must have at least 16 characters");
  } else {
    SPECULA_ASSIGN_OR_RETURN(token, mcp::NewToken());
  }
  if (file.empty()) return token;
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Error::FromErrno("write the token to " + file);
  if (::fchmod(fd.get(), 0600) != 0) return Error::FromErrno("chmod 0600 " + file);
  std::string line = token + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    return Error::FromErrno("write the token to " + file);
  }
  return token;
}

// Everything on stderr: stdout carries MCP messages only.
void Note(const std::string& text) { std::cerr << "specula mcp: " << text << std::endl; }

std::string Instructions(const std::string& session, const McpOptions& o) {
  std::string where = session.empty() ? "a specula session (created on the first call)" : "specula session " + session;
  return "Shell commands run through the `bash` tool in " + where + " over " +
         (o.session.empty() ? o.base : std::string("its base")) +
         ": a checkpointed sandbox. Every command makes a checkpoint; `checkpoints` lists them, `diff` shows what "
         "one changed, `rollback` returns to one. Commands another process speculated come back at once (hit).";
}

int RunMcp(const CliGlobals& g, const McpOptions& o) {
  // SIGTERM/SIGINT/SIGHUP are read from a signalfd by the serving loop; the
  // mask is set before any thread starts, so every thread inherits it.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client gone: writes fail, the read sees EOF
  UniqueFd sfd(::signalfd(-1, &stop, SFD_CLOEXEC));

  mcp::SessionOptions session_options;
  session_options.session = o.session;
  session_options.create.base = o.base;
  session_options.create.target = o.target;
  session_options.create.name = o.name;
  if (!o.speculation.empty()) {
    session_options.create.speculation =
        api::SpeculationConfig{.speculator = o.speculation, .k = o.k, .agent = o.agent};
  }
  if (!o.policy.empty()) {
    std::error_code ec;
    bool file = std::filesystem::exists(o.policy, ec);
    session_options.create.policy = file ? std::filesystem::absolute(o.policy, ec).lexically_normal().string() : o.policy;
  }
  if (!o.base.empty() && o.base.front() != '/') {
    std::error_code ec;
    session_options.create.base = std::filesystem::absolute(o.base, ec).lexically_normal().string();
  }
  mcp::DaemonBackend backend(g.socket);
  mcp::SpeculaTools tools(backend, session_options);

  auto session = tools.Session();
  if (!session.ok()) {
    const Error& e = session.error();
    // A daemon that is not up yet is retried at the first tool call (whose
    // result then says what is wrong); anything else is a usage error.
    if (e.code() != Code::kUnavailable) {
      Note(e.ToString());
      return ExitCodeFor(e);
    }
    Note("no session yet (" + e.ToString() + "); retrying at the first tool call");
  } else {
    Note(std::string(tools.created() ? "created" : "attached to") + " session " + *session + " on " + g.socket);
  }

  mcp::ServerOptions so;
  so.version = Version();
  so.instructions = Instructions(session.ok() ? *session : "", o);
  so.progress_interval = std::chrono::milliseconds(o.progress_ms == 0 ? 1000 : o.progress_ms);
  std::unique_ptr<mcp::StreamableHttp> http;
  if (!o.listen.empty()) {
    auto token = HttpToken(o.token_file);
    if (!token.ok()) {
      Note(token.error().ToString());
      return ExitCodeFor(token.error());
    }
    auto listening = mcp::StreamableHttp::Listen({.listen = o.listen, .token = *token});
    if (!listening.ok()) {
      Note(listening.error().ToString());
      return ExitCodeFor(listening.error());
    }
    http = std::move(*listening);
    Note("Streamable HTTP on " + http->url() +
         (o.token_file.empty() ? "; token " + *token : "; token in " + o.token_file) +
         " (send Authorization: Bearer <token>)");
  }
  auto server = std::make_unique<mcp::Server>(tools, http ? http->Writer() : mcp::FdWriter(STDOUT_FILENO), so);
  mcp::StopReason why = http ? http->Serve(*server, sfd ? sfd.get() : -1)
                             : mcp::ServeLines(*server, STDIN_FILENO, sfd ? sfd.get() : -1);

  int status = why == mcp::StopReason::kReadError ? kExitError : 0;
  if (why != mcp::StopReason::kSignal) server->WaitIdle();  // a commit is authoritative: let it end
  else backend.set_timeout(std::chrono::seconds(10));       // a signal: do not hang on a busy daemon
  if (tools.created() && !o.keep_session) {
    if (Status s = tools.DestroyCreated(); s.ok()) Note("destroyed the session it created");
    else Note("could not destroy its session: " + s.ToString());
  } else if (tools.created()) {
    Note("kept session " + *tools.Session());
  }
  if (why == mcp::StopReason::kSignal) {
    // Tool calls may still be blocked on the daemon: leave without joining them.
    std::cerr.flush();
    std::_Exit(status);
  }
  server.reset();
  return status;
}

}  // namespace

void AddMcpCommand(CLI::App& app, const CliGlobals& globals, std::function<int()>& action) {
  auto o = std::make_shared<McpOptions>();
  auto* mcp = app.add_subcommand(
      "mcp", "serve the Model Context Protocol on stdio (or Streamable HTTP with --listen): bash, checkpoints, diff, rollback and branches tools in one "
             "session (docs/mcp.md)");
  mcp->add_option("--base", o->base, "the directory tree of the session it creates")->capture_default_str();
  mcp->add_option("--target", o->target, "where promote writes: layer or base")
      ->capture_default_str()->check(CLI::IsMember({"layer", "base"}));
  mcp->add_option("--policy", o->policy, "policy file or shipped policy name (default: the built-in strict policy)");
  mcp->add_option("--name", o->name, "a label for the session it creates");
  mcp->add_option("--speculation", o->speculation,
                  "transparent speculation in the session it creates: builtin or none (default: off)")
      ->check(CLI::IsMember({"builtin", "none"}));
  mcp->add_option("--k", o->k, "with --speculation: branches launched after each command, at most")
      ->capture_default_str()->check(CLI::Range(1, 16));
  mcp->add_option("--agent", o->agent,
                  "with --speculation: the agent's name (e.g. claude-code); the daemon learns its habits across "
                  "sessions");
  mcp->add_option("--session", o->session, "use this existing session instead of creating one (never destroyed)");
  mcp->add_flag("--keep-session", o->keep_session, "keep the session it created when it exits");
  mcp->add_option("--progress-ms", o->progress_ms, "interval of progress notifications for running tool calls")
      ->capture_default_str();
  mcp->add_option("--listen", o->listen,
                  "serve MCP's Streamable HTTP on this loopback HOST:PORT (POST /mcp, bearer token) instead of stdio");
  mcp->add_option("--token-file", o->token_file, "with --listen: write the bearer token here (mode 0600)");
  mcp->callback([&globals, &action, o] {
    action = [&globals, o] { return RunMcp(globals, *o); };
  });
}

}  // namespace specula::cli
