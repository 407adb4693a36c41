#include "runtime/mcp/tools.h"

#include <cmath>
#include <sstream>

#include "runtime/rpc/client.h"

namespace specula::mcp {
namespace {

// ------------------------------------------------------------ schemas

const Json& CommitSchema() {
  static const Json schema = Json::parse(R"js({
    "type": "object",
    "properties": {
      "hit": {"type": "boolean", "description": "a speculative branch with this command was promoted"},
      "branch": {"type": "string", "description": "the branch whose result this is"},
      "exit_code": {"type": "integer", "description": "-1 when killed by a signal"},
      "signal": {"type": "integer"},
      "stdout": {"type": "string"},
      "stderr": {"type": "string"},
      "truncated": {"type": "boolean", "description": "stdout or stderr hit the policy's cap"},
      "duration_ms": {"type": "number"},
      "saved_ms": {"type": "number", "description": "latency saved by speculation"},
      "head": {"type": "string", "description": "the checkpoint this command produced"},
      "lossy_effects": {"type": "array", "items": {"type": "object"}},
      "flags": {"type": "array", "items": {"type": "string"}}
    },
    "required": ["hit", "exit_code", "stdout", "stderr", "truncated", "saved_ms", "head"]
  })js");
  return schema;
}

const Json& CheckpointsSchema() {
  static const Json schema = Json::parse(R"js({
    "type": "object",
    "properties": {
      "session": {"type": "string"},
      "head": {"type": "string"},
      "checkpoints": {"type": "array", "items": {"type": "object", "properties": {
        "checkpoint": {"type": "string"}, "parent": {"type": ["string", "null"]},
        "command": {"type": "string"}, "created": {"type": "string"}, "layers": {"type": "integer"},
        "has_process_image": {"type": "boolean"}, "cwd": {"type": "string"}},
        "required": ["checkpoint", "parent", "command"]}}
    },
    "required": ["session", "head", "checkpoints"]
  })js");
  return schema;
}

const Json& BranchesSchema() {
  static const Json schema = Json::parse(R"js({
    "type": "object",
    "properties": {
      "session": {"type": "string"},
      "branches": {"type": "array", "items": {"type": "object", "properties": {
        "branch": {"type": "string"}, "state": {"type": "string"}, "command": {"type": "string"},
        "parent_checkpoint": {"type": "string"}, "result": {"type": ["object", "null"]}},
        "required": ["branch", "state", "command"]}}
    },
    "required": ["session", "branches"]
  })js");
  return schema;
}

const Json& DiffSchema() {
  static const Json schema = Json::parse(R"js({
    "type": "object",
    "properties": {
      "branch": {"type": "string"},
      "checkpoint": {"type": "string"},
      "parent": {"type": ["string", "null"]},
      "files": {"type": "array", "items": {"type": "object", "properties": {
        "path": {"type": "string"}, "change": {"type": "string", "enum": ["added", "changed", "deleted"]},
        "type": {"type": "string"}, "diff": {"type": "string"}},
        "required": ["path", "change"]}}
    },
    "required": ["files"]
  })js");
  return schema;
}

const Json& RollbackSchema() {
  static const Json schema = Json::parse(R"js({
    "type": "object",
    "properties": {"session": {"type": "string"}, "head": {"type": "string"}},
    "required": ["session", "head"]
  })js");
  return schema;
}

Json NoArguments() { return Json{{"type", "object"}, {"properties", Json::object()}, {"additionalProperties", false}}; }

// ------------------------------------------------------------ arguments

// Arguments are checked as their schema says; a mismatch is a protocol
// error (-32602), reported as kInvalidArgument.
Error BadArgs(const std::string& tool, const std::string& what) {
  return Error(Code::kInvalidArgument, tool + ": " + what);
}

Status OnlyKnown(const std::string& tool, const Json& args, std::initializer_list<const char*> known) {
  for (const auto& [key, value] : args.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) return BadArgs(tool, "unknown argument \"" + key + "\"");
  }
  return Status::Ok();
}

Result<std::string> StringArg(const std::string& tool, const Json& args, const char* key, bool required) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) {
    if (required) return BadArgs(tool, std::string("missing argument \"") + key + "\" (a string)");
    return std::string();
  }
  if (!it->is_string()) return BadArgs(tool, std::string("argument \"") + key + "\" must be a string");
  return it->get<std::string>();
}

// ------------------------------------------------------------ text

void Section(std::ostringstream& out, const char* name, const std::string& text) {
  if (text.empty()) return;
  out << name << ":\n" << text;
  if (text.back() != '\n') out << "\n";
}

std::string FormatMs(double ms) {
  std::ostringstream s;
  if (ms < 10000) s << std::llround(ms) << " ms";
  else s << std::llround(ms / 100) / 10.0 << " s";
  return s.str();
}

}  // namespace

// ------------------------------------------------------------ backend

Result<Json> DaemonBackend::Call(std::string_view method, const Json& params) {
  SPECULA_ASSIGN_OR_RETURN(rpc::Client client, rpc::Client::Connect(socket_));
  return client.Call(method, params, std::chrono::milliseconds(timeout_ms_.load()));
}

Result<Json> DaemonBackend::CallNotifying(std::string_view method, const Json& params,
                                          const rpc::NotificationHandler& on_notification) {
  SPECULA_ASSIGN_OR_RETURN(rpc::Client client, rpc::Client::Connect(socket_));
  return client.Call(method, params, std::chrono::milliseconds(timeout_ms_.load()), on_notification);
}

ToolResult ToolError(const Error& error) {
  std::string text = "error (" + std::string(CodeName(error.code())) + "): " + error.message();
  if (!error.hint().empty()) text += "\nhint: " + error.hint();
  return ToolResult{text + "\n", nullptr, true};
}

std::string RenderCommit(const api::CommitResponse& r) {
  std::ostringstream out;
  Section(out, "stdout", r.stdout_text);
  Section(out, "stderr", r.stderr_text);
  if (r.stdout_text.empty() && r.stderr_text.empty()) out << "(no output)\n";
  if (r.truncated) out << "(output truncated at the policy's cap)\n";
  out << "[";
  if (r.signal != 0) out << "killed by signal " << r.signal;
  else out << "exit code " << r.exit_code;
  out << ", " << FormatMs(r.duration_ms);
  if (r.hit) out << ", speculation hit: " << FormatMs(r.saved_ms) << " saved";
  out << ", checkpoint " << r.head << "]\n";
  for (const auto& e : r.lossy_effects) {
    out << "[lossy effect " << e.tag << ": " << e.kind << " " << e.path;
    if (!e.detail.empty()) out << " (" << e.detail << ")";
    out << "]\n";
  }
  if (!r.flags.empty()) {
    out << "[flags:";
    for (const auto& f : r.flags) out << " " << f;
    out << "]\n";
  }
  return out.str();
}

std::string RenderCheckpoints(const std::vector<api::Checkpoint>& checkpoints, const std::string& head) {
  std::ostringstream out;
  out << checkpoints.size() << " checkpoints (oldest first); head " << head << "\n";
  for (const auto& c : checkpoints) {
    out << (c.checkpoint == head ? "* " : "  ") << c.checkpoint;
    if (c.parent.empty()) out << "  (root)";
    else out << "  <- " << c.parent << "  $ " << c.command;
    if (c.has_process_image) out << "  [processes]";
    out << "\n";
  }
  return out.str();
}

std::string RenderBranches(const std::vector<api::BranchSummary>& branches) {
  if (branches.empty()) return "no branches\n";
  std::ostringstream out;
  for (const auto& b : branches) {
    out << b.branch << "  " << b.state;
    if (b.result) out << " (exit " << b.result->exit_code << ")";
    out << "  from " << b.parent_checkpoint << "  $ " << b.command << "\n";
  }
  return out.str();
}

std::string RenderDiff(const std::string& what, const std::vector<api::DiffFile>& files) {
  std::ostringstream out;
  out << what << ": " << files.size() << (files.size() == 1 ? " file" : " files") << " changed\n";
  for (const auto& f : files) {
    out << f.change << " " << (f.type.empty() ? "" : f.type + " ") << f.path << "\n";
    if (!f.diff.empty()) {
      out << f.diff;
      if (f.diff.back() != '\n') out << "\n";
    }
  }
  return out.str();
}

// ------------------------------------------------------------ tools

SpeculaTools::SpeculaTools(Backend& backend, SessionOptions options)
    : backend_(backend), options_(std::move(options)) {}

Result<std::string> SpeculaTools::Session() {
  std::lock_guard lock(mu_);
  if (!session_.empty() && checked_) return session_;
  if (!options_.session.empty()) {
    SPECULA_ASSIGN_OR_RETURN(auto info, CallDaemon(backend_, api::ShowSessionRequest{options_.session}));
    session_ = info.session;
  } else {
    SPECULA_ASSIGN_OR_RETURN(auto made, CallDaemon(backend_, options_.create));
    session_ = made.session;
    created_ = true;
  }
  checked_ = true;
  return session_;
}

void SpeculaTools::OnInitialize(const Json& params) {
  auto info = params.find("clientInfo");
  if (info == params.end() || !info->is_object()) return;
  auto name = info->find("name");
  if (name == info->end() || !name->is_string()) return;
  // What session.create accepts as an agent: printable, at most 64 bytes.
  std::string agent;
  for (char c : name->get<std::string>()) {
    if (agent.size() == 64) break;
    if (c >= 0x20 && c < 0x7f) agent += c;
  }
  std::lock_guard lock(mu_);
  auto& spec = options_.create.speculation;
  if (spec && spec->agent.empty() && !agent.empty()) spec->agent = agent;
}

bool SpeculaTools::created() const {
  std::lock_guard lock(mu_);
  return created_;
}

Status SpeculaTools::DestroyCreated() {
  std::string id;
  {
    std::lock_guard lock(mu_);
    if (!created_) return Status::Ok();
    id = session_;
  }
  SPECULA_TRY(CallDaemon(backend_, api::DestroySessionRequest{id}).status());
  std::lock_guard lock(mu_);
  created_ = false;
  session_.clear();
  checked_ = false;
  return Status::Ok();
}

std::vector<ToolSpec> SpeculaTools::Tools() const {
  std::vector<ToolSpec> tools;
  tools.push_back(ToolSpec{
      "bash", "Run a shell command",
      "Run a command with bash in this server's specula session: a checkpointed sandbox over the session's base "
      "(the host's / by default). The shell state (working directory, environment, functions) carries over from "
      "one call to the next, and every call makes a new checkpoint that `rollback` can return to. When a "
      "speculative branch already ran the same command, its result comes back at once (hit). A command that "
      "fails is a result with its exit code, not a tool error.",
      Json::parse(R"js({"type": "object", "properties": {
        "command": {"type": "string", "description": "the command line, run by bash"},
        "timeout_ms": {"type": "integer", "minimum": 0,
                       "description": "kill the command after this long (0 or absent: the policy's limit)"}},
        "required": ["command"], "additionalProperties": false})js"),
      CommitSchema(),
      Json{{"title", "Run a shell command"}, {"readOnlyHint", false}, {"destructiveHint", true},
           {"idempotentHint", false}, {"openWorldHint", true}}});
  tools.push_back(ToolSpec{
      "checkpoints", "List checkpoints",
      "The session's checkpoints, oldest first: one per command run, each with its parent and command; the head "
      "is the current state. Any of them can be passed to `rollback` or `diff`.",
      NoArguments(), CheckpointsSchema(), Json{{"readOnlyHint", true}, {"openWorldHint", false}}});
  tools.push_back(ToolSpec{
      "diff", "Show file changes",
      "The files a checkpoint changed relative to its parent (`checkpoint`), or that a speculative branch "
      "changed so far (`branch`), with unified diffs of text files. Give exactly one of the two.",
      Json::parse(R"js({"type": "object", "properties": {
        "checkpoint": {"type": "string", "description": "a checkpoint id (from `checkpoints` or a bash result's head)"},
        "branch": {"type": "string", "description": "a live branch id (from `branches`)"}},
        "additionalProperties": false})js"),
      DiffSchema(), Json{{"readOnlyHint", true}, {"openWorldHint", false}}});
  tools.push_back(ToolSpec{
      "rollback", "Roll back to a checkpoint",
      "Move the session back to an earlier checkpoint: its files, shell state and processes become the current "
      "state, as if later commands had never run. Later checkpoints stay listed and can be rolled forward to.",
      Json::parse(R"js({"type": "object", "properties": {
        "checkpoint": {"type": "string", "description": "the checkpoint to return to"}},
        "required": ["checkpoint"], "additionalProperties": false})js"),
      RollbackSchema(),
      Json{{"readOnlyHint", false}, {"destructiveHint", false}, {"idempotentHint", true}, {"openWorldHint", false}}});
  tools.push_back(ToolSpec{
      "branches", "List speculative branches",
      "The session's speculative branches: live ones (running or done, waiting for a matching command) and "
      "finished ones (promoted or discarded), with their command and result.",
      NoArguments(), BranchesSchema(), Json{{"readOnlyHint", true}, {"openWorldHint", false}}});
  return tools;
}

Result<ToolResult> SpeculaTools::Call(const std::string& name, const Json& arguments, const CallContext& ctx) {
  if (name == "bash") return Bash(arguments, ctx);
  if (name == "checkpoints") return Checkpoints(arguments);
  if (name == "diff") return Diff(arguments);
  if (name == "rollback") return Rollback(arguments);
  if (name == "branches") return Branches(arguments);
  return Error(Code::kInvalidArgument, "unknown tool \"" + name + "\"");
}

Result<ToolResult> SpeculaTools::Bash(const Json& args, const CallContext& ctx) {
  SPECULA_TRY(OnlyKnown("bash", args, {"command", "timeout_ms"}));
  SPECULA_ASSIGN_OR_RETURN(std::string command, StringArg("bash", args, "command", true));
  uint64_t timeout_ms = 0;
  if (auto t = args.find("timeout_ms"); t != args.end() && !t->is_null()) {
    if (!t->is_number() || t->get<double>() < 0 || std::floor(t->get<double>()) != t->get<double>()) {
      return BadArgs("bash", "argument \"timeout_ms\" must be a non-negative integer");
    }
    timeout_ms = static_cast<uint64_t>(t->get<double>());
  }
  auto session = Session();
  if (!session.ok()) return ToolError(session.error());
  api::CommitRequest req;
  req.session = *session;
  req.command = std::move(command);
  req.timeout_ms = timeout_ms;
  // Live output only feeds progress messages: asked for only when the
  // client wants progress and the backend can deliver it. The result below
  // is the same either way.
  Result<api::CommitResponse> r = Error(Code::kInternal, "bash: no reply");
  if (ctx.wants_progress() && backend_.streams()) {
    req.stream = true;
    auto reply = backend_.CallNotifying(api::CommitRequest::kMethod, api::ToJson(req),
                                        [&ctx](std::string_view method, const Json& params) {
                                          if (method != api::OutputChunk::kMethod) return;
                                          auto chunk = api::FromJson<api::OutputChunk>(params, method);
                                          if (chunk.ok()) ctx.AddOutput(chunk->data);
                                        });
    r = reply.ok() ? api::FromJson<api::CommitResponse>(*reply, api::CommitRequest::kMethod)
                   : Result<api::CommitResponse>(reply.error());
  } else {
    r = CallDaemon(backend_, req);
  }
  if (!r.ok()) return ToolError(r.error());
  return ToolResult{RenderCommit(*r), api::ToJson(*r), false};
}

Result<ToolResult> SpeculaTools::Checkpoints(const Json& args) {
  SPECULA_TRY(OnlyKnown("checkpoints", args, {}));
  auto session = Session();
  if (!session.ok()) return ToolError(session.error());
  auto list = CallDaemon(backend_, api::ListCheckpointsRequest{*session});
  if (!list.ok()) return ToolError(list.error());
  auto info = CallDaemon(backend_, api::ShowSessionRequest{*session});
  if (!info.ok()) return ToolError(info.error());
  Json structured{{"session", *session}, {"head", info->head}, {"checkpoints", api::ToJson(*list)}};
  return ToolResult{RenderCheckpoints(*list, info->head), std::move(structured), false};
}

Result<ToolResult> SpeculaTools::Diff(const Json& args) {
  SPECULA_TRY(OnlyKnown("diff", args, {"branch", "checkpoint"}));
  SPECULA_ASSIGN_OR_RETURN(std::string branch, StringArg("diff", args, "branch", false));
  SPECULA_ASSIGN_OR_RETURN(std::string checkpoint, StringArg("diff", args, "checkpoint", false));
  if (branch.empty() == checkpoint.empty()) {
    return BadArgs("diff", "give exactly one of \"branch\" and \"checkpoint\"");
  }
  if (!branch.empty()) {
    auto d = CallDaemon(backend_, api::DiffBranchRequest{branch});
    if (!d.ok()) return ToolError(d.error());
    return ToolResult{RenderDiff("branch " + d->branch, d->files), api::ToJson(*d), false};
  }
  auto d = CallDaemon(backend_, api::DiffCheckpointRequest{checkpoint});
  if (!d.ok()) return ToolError(d.error());
  std::string what = "checkpoint " + d->checkpoint + (d->parent.empty() ? " (root)" : " since " + d->parent);
  return ToolResult{RenderDiff(what, d->files), api::ToJson(*d), false};
}

Result<ToolResult> SpeculaTools::Rollback(const Json& args) {
  SPECULA_TRY(OnlyKnown("rollback", args, {"checkpoint"}));
  SPECULA_ASSIGN_OR_RETURN(std::string checkpoint, StringArg("rollback", args, "checkpoint", true));
  auto session = Session();
  if (!session.ok()) return ToolError(session.error());
  auto r = CallDaemon(backend_, api::RollbackRequest{*session, checkpoint});
  if (!r.ok()) return ToolError(r.error());
  return ToolResult{"rolled back: the head of session " + r->session + " is now " + r->head + "\n", api::ToJson(*r),
                    false};
}

Result<ToolResult> SpeculaTools::Branches(const Json& args) {
  SPECULA_TRY(OnlyKnown("branches", args, {}));
  auto session = Session();
  if (!session.ok()) return ToolError(session.error());
  auto list = CallDaemon(backend_, api::ListBranchesRequest{*session});
  if (!list.ok()) return ToolError(list.error());
  Json structured{{"session", *session}, {"branches", api::ToJson(*list)}};
  return ToolResult{RenderBranches(*list), std::move(structured), false};
}

}  // namespace specula::mcp
