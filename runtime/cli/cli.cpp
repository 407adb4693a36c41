// GCC 12 reports a false -Wnull-dereference inside CLI11's inlined string
// splitting (CLI/StringTools.hpp); the pragma must precede every include to
// cover the standard headers that code is inlined from.
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include "runtime/cli/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>

#include "common/version.h"
#include "policies/policy_cli.h"
#include "policies/policy_parser.h"
#include "runtime/api/wire.h"
#include "runtime/cli/mcp_command.h"
#include "runtime/cli/output.h"
#include "runtime/cli/render.h"
#include "runtime/doctor/doctor.h"
#include "runtime/rpc/client.h"

namespace specula::cli {
namespace {

struct Globals : CliGlobals {
  uint64_t timeout_ms = 0;  // 0: wait as long as the call takes
};

// The daemon resolves paths in its own cwd, so relative paths are made
// absolute here, where the user meant them.
std::string Absolute(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

// `--policy ARG`: a file, or the name of a shipped policy. A file is loaded
// here first, as the calling user: an unreadable file, a directory or a
// policy with errors fails before the daemon is asked (and with the errors
// the user would see from `specula policy check`). Returns what to send.
Result<std::string> ResolvePolicyArg(const std::string& arg) {
  struct stat st {};
  bool exists = ::stat(arg.c_str(), &st) == 0;
  int stat_errno = exists ? 0 : errno;
  if (!exists && arg.find('/') == std::string::npos && stat_errno == ENOENT) {
    if (!policy::FindShippedPolicy(arg).empty()) return arg;  // the daemon resolves the name
    return Error(Code::kNotFound, "no policy file or shipped policy \"" + arg + "\"")
        .WithHint("pass a policy file, or one of default, sysadmin, kernel-tuning");
  }
  std::string path = Absolute(arg);
  if (!exists) {
    errno = stat_errno;
    return Error::FromErrno("policy " + path);
  }
  SPECULA_TRY(policy::LoadPolicyFile(path).status());
  return path;
}

std::string JoinWords(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

template <typename Request>
using OnReply = std::function<int(const Json& raw, const typename Request::Response& reply)>;

// Connects, sends the request, and hands the reply (as received, and
// decoded) to on_reply; or reports the error.
template <api::WireRequest Request>
int Call(const Globals& g, const Request& request, const OnReply<Request>& on_reply) {
  auto client = rpc::Client::Connect(g.socket);
  if (!client.ok()) return ReportError(client.error(), g.json, std::cout, std::cerr);
  auto raw = client->Call(Request::kMethod, api::ToJson(request), std::chrono::milliseconds(g.timeout_ms));
  if (!raw.ok()) return ReportError(raw.error(), g.json, std::cout, std::cerr);
  auto reply = api::FromJson<typename Request::Response>(*raw, Request::kMethod);
  if (!reply.ok()) return ReportError(reply.error(), g.json, std::cout, std::cerr);
  return on_reply(*raw, *reply);
}

// For commands whose --json output is the daemon's reply as is.
template <api::WireRequest Request>
OnReply<Request> Print(const Globals& g, std::function<std::string(const typename Request::Response&)> text) {
  return [&g, text = std::move(text)](const Json& raw, const typename Request::Response& reply) {
    if (g.json) std::cout << rpc::DumpJson(raw) << "\n";
    else std::cout << text(reply);
    return 0;
  };
}

// `streamed`: the output already went out as it came (StreamCommit), so
// only what follows it is printed here.
int PrintCommit(const Globals& g, const Json& raw, const api::CommitResponse& r, bool streamed = false) {
  int status = r.exit_code;
  if (r.signal != 0) status = 128 + r.signal;
  if (status < 0 || status > 255) status = 1;
  if (g.json) {
    std::cout << rpc::DumpJson(raw) << "\n";
    return status;
  }
  // As a shell would: the action's own output, nothing added on stdout.
  if (!streamed) {
    std::cout.write(r.stdout_text.data(), static_cast<std::streamsize>(r.stdout_text.size()));
    std::cout.flush();
    std::cerr.write(r.stderr_text.data(), static_cast<std::streamsize>(r.stderr_text.size()));
  }
  if (r.truncated) std::cerr << "specula: output truncated at the policy's cap\n";
  for (const auto& e : r.lossy_effects) std::cerr << "specula: lossy effect " << LossyEffectLine(e) << "\n";
  for (const auto& n : r.promote_notes) {
    if (n.path.empty()) {
      std::cerr << "specula: " << n.action << ": " << n.detail << "\n";
    } else {
      std::cerr << "specula: promote onto the base " << n.action << " " << n.path << ": " << n.detail << "\n";
    }
  }
  return status;
}

// `specula run` for a person: the daemon streams the output (docs/api.md
// "Streaming output") and each chunk is printed as it comes, stdout to
// stdout and stderr to stderr, so a long build shows progress. The chunks
// add up to the reply's text (a hit sends its output as chunks too), so
// the reply's text is not printed again. --json does not stream: its one
// line is the reply as it always was.
int StreamCommit(const Globals& g, api::CommitRequest req) {
  auto client = rpc::Client::Connect(g.socket);
  if (!client.ok()) return ReportError(client.error(), g.json, std::cout, std::cerr);
  req.stream = true;
  bool streamed = false;
  auto on_chunk = [&streamed](const api::OutputChunk& c) {
    streamed = true;
    std::ostream& os = c.stream == "stderr" ? std::cerr : std::cout;
    os.write(c.data.data(), static_cast<std::streamsize>(c.data.size()));
    os.flush();
  };
  auto raw = client->Call(api::CommitRequest::kMethod, api::ToJson(req), std::chrono::milliseconds(g.timeout_ms),
                          [&on_chunk](std::string_view method, const Json& params) {
                            if (method != api::OutputChunk::kMethod) return;
                            auto chunk = api::FromJson<api::OutputChunk>(params, method);
                            if (chunk.ok()) on_chunk(*chunk);
                          });
  if (!raw.ok()) return ReportError(raw.error(), g.json, std::cout, std::cerr);
  auto reply = api::FromJson<api::CommitResponse>(*raw, api::CommitRequest::kMethod);
  if (!reply.ok()) return ReportError(reply.error(), g.json, std::cout, std::cerr);
  // A daemon that does not stream sent no chunk: print the reply's text.
  // One that does sent every byte of it (none when there was no output).
  return PrintCommit(g, *raw, *reply, streamed);
}

}  // namespace

int CliMain(int argc, char** argv, const std::vector<CliExtension>& extensions) {
  CLI::App app{"specula: speculative sandboxes for an agent's shell actions (docs/cli.md)", "specula"};
  app.require_subcommand(1);
  app.fallthrough();  // global options also after the subcommand: `specula session ls --json`
  Globals g;
  g.socket = rpc::DefaultSocketPath();
  app.add_option("--socket", g.socket, "speculad's socket (env SPECULA_SOCKET)")->capture_default_str();
  app.add_flag("--json", g.json, "print JSON instead of tables");
  app.add_option("--timeout-ms", g.timeout_ms, "give up waiting for the daemon after this long (0: never)");

  std::function<int()> action;

  // session create|ls|show|rm
  auto* session = app.add_subcommand("session", "create, list, show and remove sessions");
  session->require_subcommand(1);
  std::string base = "/", target = "layer", policy_file, name, session_id;
  auto* create = session->add_subcommand("create", "create a session over a base directory");
  create->add_option("--base", base, "the directory tree the agent administers")->capture_default_str();
  create->add_option("--target", target, "where promote writes: layer or base")
      ->capture_default_str()->check(CLI::IsMember({"layer", "base"}));
  create->add_option("--policy", policy_file, "policy file (default: the built-in strict policy)");
  create->add_option("--name", name, "a label for the session");
  std::string speculator;
  uint32_t spec_k = 3;
  double spec_min_p = 0;
  std::string spec_agent;
  create->add_option("--speculation", speculator,
                     "transparent speculation: the daemon launches the next commands itself (builtin or none)")
      ->check(CLI::IsMember({"builtin", "none"}));
  create->add_option("--k", spec_k, "with --speculation: branches launched after each commit, at most")
      ->capture_default_str()->check(CLI::Range(1, 16));
  create->add_option("--min-p", spec_min_p, "with --speculation: never launch a candidate under this confidence")
      ->check(CLI::Range(0.0, 1.0));
  create->add_option("--agent", spec_agent,
                     "with --speculation: the agent's name; the daemon learns its habits across sessions");
  create->callback([&] {
    action = [&] {
      api::CreateSessionRequest req{.base = Absolute(base), .target = target, .name = name};
      if (!speculator.empty()) {
        req.speculation =
            api::SpeculationConfig{.speculator = speculator, .k = spec_k, .min_p = spec_min_p, .agent = spec_agent};
      }
      // A file (made absolute), or else the name of a shipped policy.
      if (!policy_file.empty()) {
        auto resolved = ResolvePolicyArg(policy_file);
        if (!resolved.ok()) return ReportError(resolved.error(), g.json, std::cout, std::cerr);
        req.policy = *resolved;
      }
      return Call(g, req, Print<api::CreateSessionRequest>(g, [](const api::CreateSessionResponse& r) {
        return "session " + r.session + " created, head " + r.head + "\n";
      }));
    };
  });
  auto* ls = session->add_subcommand("ls", "list sessions");
  ls->alias("list");
  ls->callback([&] {
    action = [&] { return Call(g, api::ListSessionsRequest{}, Print<api::ListSessionsRequest>(g, RenderSessionTable)); };
  });
  auto* show = session->add_subcommand("show", "show one session");
  show->add_option("SESSION", session_id)->required();
  show->callback([&] {
    action = [&] { return Call(g, api::ShowSessionRequest{session_id}, Print<api::ShowSessionRequest>(g, RenderSession)); };
  });
  auto* rm = session->add_subcommand("rm", "destroy a session: discard its branches and delete its history");
  rm->add_option("SESSION", session_id)->required();
  rm->callback([&] {
    action = [&] {
      return Call(g, api::DestroySessionRequest{session_id},
                  Print<api::DestroySessionRequest>(
                      g, [](const api::DestroySessionResponse& r) { return "session " + r.session + " destroyed\n"; }));
    };
  });

  // spec / run: SESSION -- COMMAND...
  std::vector<std::string> words;
  uint64_t action_timeout = 0;
  auto add_action = [&](const char* cmd, const char* help) {
    auto* sub = app.add_subcommand(cmd, help);
    sub->add_option("SESSION", session_id)->required();
    sub->add_option("COMMAND", words, "the command, after --")->required();
    sub->add_option("--action-timeout-ms", action_timeout, "kill the action after this long (0: the policy's)");
    return sub;
  };
  add_action("spec", "start a speculative branch running COMMAND; prints the branch id")->callback([&] {
    action = [&] {
      api::SpeculateRequest req;
      req.session = session_id;
      req.command = JoinWords(words);
      req.timeout_ms = action_timeout;
      return Call(g, req, Print<api::SpeculateRequest>(g, [](const api::SpeculateResponse& r) { return r.branch + "\n"; }));
    };
  });
  add_action("run", "run COMMAND for real (commit); prints its output and exits with its status")->callback([&] {
    action = [&] {
      api::CommitRequest req;
      req.session = session_id;
      req.command = JoinWords(words);
      req.timeout_ms = action_timeout;
      if (!g.json) return StreamCommit(g, std::move(req));
      return Call<api::CommitRequest>(
          g, req, [&](const Json& raw, const api::CommitResponse& r) { return PrintCommit(g, raw, r); });
    };
  });
  auto* abort = app.add_subcommand("abort", "discard every live branch of a session");
  abort->add_option("SESSION", session_id)->required();
  abort->callback([&] {
    action = [&] {
      return Call(g, api::AbortRequest{session_id}, Print<api::AbortRequest>(g, [](const api::AbortResponse& r) {
        return "discarded " + std::to_string(r.discarded) + " branches\n";
      }));
    };
  });

  // Inspection.
  std::string branch_id, checkpoint_id, dir;
  auto* branches = app.add_subcommand("branches", "list a session's branches");
  branches->add_option("SESSION", session_id)->required();
  branches->callback([&] {
    action = [&] {
      return Call(g, api::ListBranchesRequest{session_id}, Print<api::ListBranchesRequest>(g, RenderBranchTable));
    };
  });
  auto* inspect = app.add_subcommand("inspect", "show a branch: state, result, effects, syscalls");
  inspect->add_option("BRANCH", branch_id)->required();
  inspect->callback([&] {
    action = [&] { return Call(g, api::ShowBranchRequest{branch_id}, Print<api::ShowBranchRequest>(g, RenderBranch)); };
  });
  auto* diff = app.add_subcommand("diff", "files a branch added, changed and deleted");
  diff->add_option("BRANCH", branch_id)->required();
  diff->callback([&] {
    action = [&] { return Call(g, api::DiffBranchRequest{branch_id}, Print<api::DiffBranchRequest>(g, RenderDiff)); };
  });
  auto* log = app.add_subcommand("log", "a session's checkpoints as a graph");
  log->add_option("SESSION", session_id)->required();
  log->callback([&] {
    action = [&] {
      auto client = rpc::Client::Connect(g.socket);
      if (!client.ok()) return ReportError(client.error(), g.json, std::cout, std::cerr);
      auto timeout = std::chrono::milliseconds(g.timeout_ms);
      auto list = client->Call(api::ListCheckpointsRequest{session_id}, timeout);
      if (!list.ok()) return ReportError(list.error(), g.json, std::cout, std::cerr);
      if (g.json) {
        std::cout << rpc::DumpJson(CheckpointLogJson(*list)) << "\n";
        return 0;
      }
      auto info = client->Call(api::ShowSessionRequest{session_id}, timeout);
      if (!info.ok()) return ReportError(info.error(), g.json, std::cout, std::cerr);
      std::cout << RenderCheckpointLog(*list, info->head);
      return 0;
    };
  });
  auto* mount = app.add_subcommand("mount", "mount a checkpoint's files read-only at DIR");
  mount->add_option("CHECKPOINT", checkpoint_id)->required();
  mount->add_option("DIR", dir)->required();
  mount->callback([&] {
    action = [&] {
      return Call(g, api::MountCheckpointRequest{checkpoint_id, Absolute(dir)},
                  Print<api::MountCheckpointRequest>(g, [](const api::MountCheckpointResponse& r) {
                    return r.checkpoint + " mounted at " + r.dir + "\n";
                  }));
    };
  });
  auto* umount = app.add_subcommand("umount", "unmount a checkpoint mounted with `specula mount`");
  umount->add_option("DIR", dir)->required();
  umount->callback([&] {
    action = [&] {
      return Call(g, api::UmountCheckpointRequest{Absolute(dir)},
                  Print<api::UmountCheckpointRequest>(
                      g, [](const api::UmountCheckpointResponse& r) { return "unmounted " + r.dir + "\n"; }));
    };
  });
  auto* rollback = app.add_subcommand("rollback", "move a session's head back to CHECKPOINT");
  rollback->add_option("SESSION", session_id)->required();
  rollback->add_option("CHECKPOINT", checkpoint_id)->required();
  rollback->callback([&] {
    action = [&] {
      return Call(g, api::RollbackRequest{session_id, checkpoint_id},
                  Print<api::RollbackRequest>(g, [](const api::RollbackResponse& r) {
                    return "session " + r.session + " head is now " + r.head + "\n";
                  }));
    };
  });

  // Local commands (no daemon needed).
  auto* doctor = app.add_subcommand("doctor", "what this machine's kernel and tools allow");
  doctor->callback([&] { action = [&] { return DoctorCommand(g.json, std::cout); }; });
  auto* policy = app.add_subcommand("policy", "check or explain a policy file");
  policy->require_subcommand(1);
  std::string policy_arg;
  auto* check = policy->add_subcommand("check", "validate a policy file");
  check->add_option("FILE", policy_arg)->required();
  check->callback([&] {
    action = [&] { return policy::PolicyCheckCommand(policy_arg, g.json, std::cout, std::cerr); };
  });
  auto* explain = policy->add_subcommand("explain", "a policy file (or shipped policy name) in plain words");
  explain->add_option("FILE", policy_arg)->required();
  explain->callback([&] {
    action = [&] { return policy::PolicyExplainCommand(policy_arg, g.json, std::cout, std::cerr); };
  });
  auto* version = app.add_subcommand("version", "the CLI's and the daemon's versions");
  version->callback([&] {
    action = [&] {
      return Call<api::VersionRequest>(g, {}, [&](const Json& raw, const api::VersionResponse& r) {
        if (g.json) {
          std::cout << rpc::DumpJson(Json{{"cli", Version()}, {"daemon", raw}}) << "\n";
        } else {
          std::cout << "specula " << Version() << "\nspeculad " << r.version << " (pid " << r.pid << ", "
                    << (r.core ? "with" : "WITHOUT") << " the speculation core, socket " << r.socket << ")\n";
        }
        return 0;
      });
    };
  });

  AddMcpCommand(app, g, action);
  for (const auto& extend : extensions) extend(app, g, action);

  // The command boundary: no exception (std::filesystem, nlohmann::json,
  // std::stoi in a command or a library's caller) may abort the CLI; it is
  // reported through the error model like any other failure.
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int status = app.exit(e);
      return status == 0 ? 0 : kExitUsage;
    }
    if (!action) return kExitUsage;
    return action();
  } catch (const std::exception& e) {
    return ReportError(ErrorFromException(e), g.json, std::cout, std::cerr);
  }
}

}  // namespace specula::cli
