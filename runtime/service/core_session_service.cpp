#include "runtime/service/core_session_service.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/spawn.h"
#include "common/time.h"
#include "common/unique_fd.h"
#include "policies/policy_parser.h"
#include "runtime/api/output_chunker.h"
#include "sandbox/overlay.h"
#include "sandbox/sandbox.h"

namespace specula::service {
namespace {

// The mount source of checkpoint views: umount only touches mounts carrying
// it, so checkpoint.umount cannot be used to unmount anything else.
constexpr const char* kMountSourcePrefix = "specula-checkpoint:";

api::BranchResult BranchResultOf(const sandbox::ActionResult& r) {
  return api::BranchResult{r.exit_code, r.signal, static_cast<double>(r.duration.count()),
                           r.stdout_data.size(), r.stderr_data.size(), r.stdout_truncated || r.stderr_truncated,
                           r.stdout_data, r.stderr_data};
}

// A lossy journal record as the wire shows it, in a commit and in branch.show.
api::LossyEffect Lossy(const lossy::LossyRecord& r) {
  return api::LossyEffect{r.tag, lossy::ToString(r.kind), r.path, r.rule,
                          r.compensation == policy::Compensation::kRestore, r.detail};
}

// The branch's instrumentation report (runtime/instrument ToJson: effects,
// lossy_effects, flags, denied_egress) as branch.show's journal, lossy
// effects and flags. Fields are read defensively: the report is data.
void AddInstrumentReport(const nlohmann::json& report, api::BranchDetail& d) {
  auto str = [](const nlohmann::json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto it = report.find("effects"); it != report.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (!e.is_object()) continue;
      api::JournalEntry entry{str(e, "op"), str(e, "addr").empty() ? str(e, "path") : str(e, "addr"), "", ""};
      std::string path2 = str(e, "path2");
      std::string comm = str(e, "comm");
      entry.detail = path2.empty() ? comm : "-> " + path2;
      if (auto r = e.find("result"); r != e.end() && r->is_number_integer() && r->get<int64_t>() < 0) {
        entry.detail += (entry.detail.empty() ? "" : " ") + std::string("(error ") +
                        std::to_string(r->get<int64_t>()) + ")";
      }
      d.journal.push_back(std::move(entry));
    }
  }
  if (auto it = report.find("lossy_effects"); it != report.end() && it->is_array()) {
    for (const auto& l : *it) {
      if (auto rec = lossy::LossyRecord::FromJson(l); rec.ok()) d.lossy_effects.push_back(Lossy(*rec));
    }
  }
  if (auto it = report.find("flags"); it != report.end() && it->is_array()) {
    for (const auto& f : *it) {
      if (f.is_string()) d.flags.push_back(f.get<std::string>());
    }
  }
  if (auto it = report.find("denied_egress"); it != report.end() && it->is_number_unsigned() &&
      it->get<uint64_t>() > 0) {
    d.denied.push_back(api::SyscallEvent{"connect", std::to_string(it->get<uint64_t>()) +
                                                   " egress attempt(s) denied by policy", "denied"});
  }
}

void FillSummary(const core::BranchInfo& b, api::BranchSummary& s) {
  s = api::BranchSummary{b.id, b.session, core::ToString(b.state), b.command, b.parent_checkpoint,
                         Rfc3339(b.created_ms), std::nullopt, std::nullopt};
  if (b.result) s.result = BranchResultOf(*b.result);
  // Written by LaunchSpeculative; a damaged record only loses the origin.
  if (!b.origin.empty()) {
    auto j = nlohmann::json::parse(b.origin, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      if (auto o = api::FromJson<api::BranchOrigin>(j, "branch origin"); o.ok()) s.origin = std::move(*o);
    }
  }
}

// The shell's directory after a commit, from its checkpoint's shell state.
std::string CwdOf(core::SessionManager& m, const std::string& checkpoint) {
  auto c = m.ShowCheckpoint(checkpoint);
  if (!c.ok()) return "";
  auto shell = sandbox::ShellState::Parse(c->shell_state);
  return shell.ok() ? shell->cwd : "";
}

api::Checkpoint Checkpoint(const store::CheckpointRecord& c) {
  api::Checkpoint info{c.id, c.parent, c.session, c.command, Rfc3339(c.created_ms),
                       static_cast<uint32_t>(c.layers.size()), c.has_process_image, c.image_bytes, ""};
  if (auto shell = sandbox::ShellState::Parse(c.shell_state); shell.ok()) info.cwd = shell->cwd;
  return info;
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// The mount source recorded for `dir` in /proc/self/mountinfo (the last,
// i.e. topmost, mount at exactly that point), or "" when nothing is mounted.
std::string MountSourceAt(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, source;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point;
    f >> id >> parent >> devno >> root >> point;
    if (point != dir) continue;
    std::string field;
    while (f >> field && field != "-") {}
    std::string fstype, src;
    f >> fstype >> src;
    source = src;
  }
  return source;
}

// "file" | "dir" | "symlink" | "other", or "" when path is empty or gone.
std::string FileType(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::lstat(path.c_str(), &st) != 0) return "";
  if (S_ISREG(st.st_mode)) return "file";
  if (S_ISDIR(st.st_mode)) return "dir";
  if (S_ISLNK(st.st_mode)) return "symlink";
  return "other";
}

// The file `path` resolves to in a stack of lower dirs (topmost first), as
// overlayfs would; "" when absent or hidden by a whiteout (a 0/0 char device).
std::string LowerFile(const std::vector<std::string>& lowers, const std::string& path) {
  for (const auto& dir : lowers) {
    std::string candidate = dir + path;
    struct stat st {};
    if (::lstat(candidate.c_str(), &st) != 0) continue;
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) return "";
    return candidate;
  }
  return "";
}

// Regular files small enough to diff and without NUL bytes in their head.
constexpr off_t kMaxDiffBytes = 256 * 1024;
bool LooksLikeText(const std::string& path) {
  if (path.empty()) return true;  // /dev/null side
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxDiffBytes) return false;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return false;
  char buf[8192];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  return n >= 0 && std::find(buf, buf + n, '\0') == buf + n;
}

// `diff -u` of two files ("" = absent), labelled with the sandbox path.
std::string TextDiff(const std::string& path, const std::string& before, const std::string& after) {
  if (!LooksLikeText(before) || !LooksLikeText(after)) return "";
  SpawnOptions opts;
  opts.argv = {"diff", "-u", "--label", "a" + path, "--label", "b" + path,
               before.empty() ? "/dev/null" : before, after.empty() ? "/dev/null" : after};
  opts.clear_env = true;
  opts.env_set = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
  opts.timeout = std::chrono::seconds(10);
  auto r = Spawn(opts);
  // diff exits 1 when the files differ; 0 (same) and >1 (trouble) give no text.
  if (!r.ok() || r->exit_code != 1) return "";
  return r->out;
}

// The files of a change list: type, and a unified diff of text files when
// both sides are known (`lowers` topmost first, the base last; "" for "/").
std::vector<api::DiffFile> DiffFiles(const std::vector<core::FileChange>& changes, const std::string& upper,
                                     const std::vector<std::string>& lowers) {
  std::vector<api::DiffFile> files;
  for (const auto& c : changes) {
    api::DiffFile f{c.path, core::ToString(c.kind), "", ""};
    std::string before = c.kind == core::ChangeKind::kAdded ? "" : LowerFile(lowers, c.path);
    std::string after = c.kind == core::ChangeKind::kDeleted || upper.empty() ? "" : upper + c.path;
    f.type = FileType(after.empty() ? before : after);
    if (f.type == "file" && !lowers.empty() && !upper.empty()) f.diff = TextDiff(c.path, before, after);
    files.push_back(std::move(f));
  }
  return files;
}

}  // namespace

CoreSessionService::CoreSessionService(std::unique_ptr<core::SessionManager> m)
    : manager_(std::move(m)),
      speculation_(std::make_unique<speculation::Speculation>(
          [this](const std::string& session, const std::string& head, const speculation::Launch& l) {
            return LaunchSpeculative(session, head, l);
          })) {}

CoreSessionService::~CoreSessionService() { speculation_->Stop(); }

void CoreSessionService::BeginShutdown() {
  speculation_->Stop();
  manager_->BeginShutdown();
}

Result<std::string> CoreSessionService::LaunchSpeculative(const std::string& session, const std::string& head,
                                                          const speculation::Launch& launch) {
  SPECULA_ASSIGN_OR_RETURN(core::SessionInfo s, manager_->ShowSession(session));
  if (s.record.head != head) return Error(Code::kAborted, "session " + session + " moved on from " + head);
  // The head check above is only a shortcut: a commit may move the head
  // before the core runs this (it waits for a commit in flight). The core
  // checks the head again, and returns a live branch of that head already
  // running the command (a client's, or an earlier round's), under the
  // session's operation lock.
  return manager_->Speculate(session, launch.command, std::chrono::milliseconds(0),
                             api::ToJson(launch.origin).dump(), head);
}

Result<std::unique_ptr<CoreSessionService>> CoreSessionService::Open(const std::string& state_dir,
                                                                     const std::string& socket,
                                                                     uint32_t pool_per_session, uint32_t pool_total) {
  core::SessionManagerOptions opts;
  opts.state_dir = state_dir;
  opts.pool_per_session = pool_per_session;
  opts.pool_total = pool_total;
  if (!socket.empty()) opts.masked_paths.push_back(socket);
  SPECULA_ASSIGN_OR_RETURN(auto manager, core::SessionManager::Open(std::move(opts)));
  return std::unique_ptr<CoreSessionService>(new CoreSessionService(std::move(manager)));
}

api::Session CoreSessionService::Convert(const core::SessionInfo& s) {
  const auto& r = s.record;
  api::Session info{r.id, r.name, r.base, r.target,
                   r.policy_path.empty() ? (r.policy_text.empty() ? "default" : "(inline)") : r.policy_path,
                   r.head, Rfc3339(r.created_ms), 0, static_cast<uint32_t>(s.live_branches),
                   speculation_->Report(r.id)};
  if (auto cps = manager_->ListCheckpoints(r.id); cps.ok()) info.checkpoints = static_cast<uint32_t>(cps->size());
  return info;
}

Result<api::CreateSessionResponse> CoreSessionService::CreateSession(const api::CreateSessionRequest& req) {
  core::CreateSessionRequest c;
  c.name = req.name;
  c.base = req.base;
  c.target = req.target == "base" ? policy::PromoteTarget::kBase : policy::PromoteTarget::kLayer;
  c.policy = policy::DefaultPolicy();
  if (!req.policy.empty()) {
    // An absolute path, or the name of a shipped policy ("sysadmin").
    std::string path = req.policy.front() == '/' ? req.policy : policy::FindShippedPolicy(req.policy);
    if (path.empty()) {
      return Error(Code::kNotFound, "no policy file or shipped policy \"" + req.policy + "\"")
          .WithHint("pass an absolute path, or one of default, sysadmin, kernel-tuning");
    }
    std::ifstream in(path);
    if (!in) return Error::FromErrno("read policy " + path);
    std::stringstream text;
    text << in.rdbuf();
    c.policy_text = text.str();
    c.policy_path = path;
    auto parsed = policy::LoadPolicyFile(path);
    if (!parsed.ok()) return std::move(parsed).error().Context("policy " + path);
    c.policy = std::move(*parsed);
  }
  // The speculator is built before the session so that a bad config
  // leaves nothing behind.
  std::unique_ptr<speculation::Proposer> proposer;
  if (req.speculation) {
    SPECULA_ASSIGN_OR_RETURN(proposer, speculation_->MakeProposer(*req.speculation));
  }
  SPECULA_ASSIGN_OR_RETURN(core::SessionInfo s, manager_->CreateSession(c));
  if (proposer) {
    speculation_->Enable(s.record.id, std::move(proposer));
    speculation_->AfterCreate(s.record.id, s.record.head);
  }
  return api::CreateSessionResponse{s.record.id, s.record.head};
}

Result<std::vector<api::Session>> CoreSessionService::ListSessions(const api::ListSessionsRequest&) {
  SPECULA_ASSIGN_OR_RETURN(auto sessions, manager_->ListSessions());
  std::vector<api::Session> out;
  for (const auto& s : sessions) out.push_back(Convert(s));
  return out;
}

Result<api::Session> CoreSessionService::ShowSession(const api::ShowSessionRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_ASSIGN_OR_RETURN(core::SessionInfo s, manager_->ShowSession(session));
  return Convert(s);
}

Result<api::DestroySessionResponse> CoreSessionService::DestroySession(const api::DestroySessionRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_TRY(manager_->DestroySession(session));
  speculation_->Remove(session);
  return api::DestroySessionResponse{session, true};
}

Result<api::RollbackResponse> CoreSessionService::Rollback(const api::RollbackRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_TRY(manager_->Rollback(session, req.checkpoint));
  speculation_->AfterRollback(session, req.checkpoint);
  return api::RollbackResponse{session, req.checkpoint};
}

Result<api::SpeculateResponse> CoreSessionService::Speculate(const api::SpeculateRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_ASSIGN_OR_RETURN(std::string branch,
                           manager_->Speculate(session, req.command, std::chrono::milliseconds(req.timeout_ms)));
  return api::SpeculateResponse{std::move(branch)};
}

Result<api::CommitResponse> CoreSessionService::Commit(const api::CommitRequest& req,
                                                       const OutputChunkSink& on_chunk) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  std::optional<api::OutputChunker> chunker;
  core::CommitOutputSink live;
  if (on_chunk) {
    chunker.emplace(session, on_chunk);
    live = [&chunker](const std::string& branch, sandbox::OutputStream stream, std::string_view data) {
      chunker->Add(branch, stream == sandbox::OutputStream::kStderr ? "stderr" : "stdout", data);
    };
  }
  auto committed = manager_->Commit(session, req.command, std::chrono::milliseconds(req.timeout_ms), live);
  // Before the reply: a character held back at the end of a stream.
  if (chunker) chunker->Flush();
  SPECULA_ASSIGN_OR_RETURN(core::CommitResult r, std::move(committed));
  api::CommitResponse out;
  out.hit = r.hit;
  out.branch = r.branch;
  out.exit_code = r.exit_code;
  out.signal = r.signal;
  out.stdout_text = std::move(r.stdout_data);
  out.stderr_text = std::move(r.stderr_data);
  out.truncated = r.truncated;
  out.duration_ms = static_cast<double>(std::max<int64_t>(0, r.duration_ms));
  out.saved_ms = static_cast<double>(std::max<int64_t>(0, r.saved_ms));
  out.head = r.head;
  for (const auto& e : r.lossy_effects) out.lossy_effects.push_back(Lossy(e));
  out.flags = r.flags;
  if (r.timed_out) out.flags.push_back("timed_out");
  for (const auto& n : r.promote_notes) out.promote_notes.push_back({n.path, n.action, n.detail});
  // Queues the next proposal round and returns: the reply does not wait.
  speculators::Step step{req.command, r.exit_code, r.signal, out.stdout_text, out.stderr_text,
                         CwdOf(*manager_, r.head), true};
  bool speculated = false;
  if (r.hit) {
    auto b = manager_->ShowBranch(r.branch);
    speculated = b.ok() && !b->origin.empty();
  }
  speculation_->AfterCommit(session, r.head, std::move(step), r.hit, speculated, out.duration_ms,
                            out.saved_ms);
  return out;
}

Result<api::AbortResponse> CoreSessionService::Abort(const api::AbortRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  // The core does not count what it discards; count the live ones first.
  uint32_t live = 0;
  if (auto branches = manager_->ListBranches(session); branches.ok()) {
    for (const auto& b : *branches) {
      if (b.state == core::BranchState::kStarting || b.state == core::BranchState::kRunning ||
          b.state == core::BranchState::kBlocked || b.state == core::BranchState::kDone) {
        ++live;
      }
    }
  }
  SPECULA_TRY(manager_->Abort(session));
  return api::AbortResponse{live};
}

Result<std::vector<api::BranchSummary>> CoreSessionService::ListBranches(const api::ListBranchesRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_ASSIGN_OR_RETURN(auto branches, manager_->ListBranches(session));
  std::vector<api::BranchSummary> out(branches.size());
  for (size_t i = 0; i < branches.size(); ++i) FillSummary(branches[i], out[i]);
  return out;
}

Result<api::BranchDetail> CoreSessionService::ShowBranch(const api::ShowBranchRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(core::BranchInfo b, manager_->ShowBranch(req.branch));
  api::BranchDetail d;
  FillSummary(b, d);
  d.upper_bytes = b.upper_bytes;
  for (const auto& call : b.deferred) {
    std::string args;
    for (uint64_t a : call.args) args += (args.empty() ? "" : ", ") + Hex(a);
    d.deferred.push_back(api::SyscallEvent{call.syscall, "pid " + std::to_string(call.pid) + ": " + args, "waiting"});
  }
  // The error stays even when a failed branch was later discarded.
  if (!b.error.empty()) d.flags.push_back("failed: " + b.error);
  if (b.result && b.result->timed_out) d.flags.push_back("timed_out");
  // Kept in the branch's record: the same for a finished branch as a live one.
  if (b.report) AddInstrumentReport(*b.report, d);
  d.reason = b.reason;
  return d;
}

Result<api::BranchDiff> CoreSessionService::DiffBranch(const api::DiffBranchRequest& req) {
  const std::string& branch = req.branch;
  SPECULA_ASSIGN_OR_RETURN(auto changes, manager_->DiffBranch(branch));
  api::BranchDiff d{branch, {}};
  // Text diffs need the branch's upper dir (gone once promoted or
  // discarded) and the view it was forked from: the checkpoint's layers
  // over the base. Without them the list of changes is still returned.
  std::string upper;
  std::vector<std::string> lowers;  // topmost first, the base last
  if (auto b = manager_->ShowBranch(branch); b.ok()) {
    upper = manager_->store().BranchUpperDir(branch);
    auto layers = manager_->CheckpointLayerDirs(b->parent_checkpoint);
    auto session = manager_->ShowSession(b->session);
    if (layers.ok() && session.ok()) {
      lowers.assign(layers->rbegin(), layers->rend());
      lowers.push_back(session->record.base == "/" ? "" : session->record.base);
    }
  }
  d.files = DiffFiles(changes, upper, lowers);
  return d;
}

Result<api::CheckpointDiff> CoreSessionService::DiffCheckpoint(const api::DiffCheckpointRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(core::CheckpointChanges c, manager_->DiffCheckpoint(req.checkpoint));
  std::vector<std::string> lowers = c.lowers;
  if (!lowers.empty() && lowers.back() == "/") lowers.back() = "";  // paths are joined to "" + "/etc/..."
  return api::CheckpointDiff{req.checkpoint, c.parent, DiffFiles(c.changes, c.upper, lowers)};
}

Result<std::vector<api::Checkpoint>> CoreSessionService::ListCheckpoints(const api::ListCheckpointsRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(const std::string session, manager_->ResolveSession(req.session));
  SPECULA_ASSIGN_OR_RETURN(auto cps, manager_->ListCheckpoints(session));
  std::vector<api::Checkpoint> out;
  for (const auto& c : cps) out.push_back(Checkpoint(c));
  return out;
}

Result<api::Checkpoint> CoreSessionService::ShowCheckpoint(const api::ShowCheckpointRequest& req) {
  SPECULA_ASSIGN_OR_RETURN(auto c, manager_->ShowCheckpoint(req.checkpoint));
  return Checkpoint(c);
}

Result<api::MountCheckpointResponse> CoreSessionService::MountCheckpoint(const api::MountCheckpointRequest& req) {
  const std::string& checkpoint = req.checkpoint;
  const std::string& dir = req.dir;
  SPECULA_ASSIGN_OR_RETURN(auto ckpt, manager_->ShowCheckpoint(checkpoint));
  SPECULA_ASSIGN_OR_RETURN(auto session, manager_->ShowSession(ckpt.session));
  SPECULA_ASSIGN_OR_RETURN(std::vector<std::string> layers, manager_->CheckpointLayerDirs(checkpoint));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error::FromErrno("mount point " + dir);
  if (!S_ISDIR(st.st_mode)) return Error(Code::kInvalidArgument, "mount point " + dir + " is not a directory");
  // A read-only view: lower layers only (topmost first, the base at the
  // bottom), through the one overlay module; it stays mounted after the
  // call (`specula umount` removes it), found again by its source.
  sandbox::OverlayLayers view;
  view.lowers.assign(layers.rbegin(), layers.rend());
  view.lowers.push_back(session.record.base);
  sandbox::OverlayMountOptions opts;
  opts.source = std::string(kMountSourcePrefix) + checkpoint;
  opts.read_only = true;
  opts.index = false;  // nothing is written through a view
  auto mounted = sandbox::OverlayMount::Mount(view, dir, opts);
  if (!mounted.ok()) return Error(mounted.error()).Context("mount the view of " + checkpoint + " at " + dir);
  mounted->Release();
  return api::MountCheckpointResponse{checkpoint, dir};
}

Result<api::UmountCheckpointResponse> CoreSessionService::UmountCheckpoint(const api::UmountCheckpointRequest& req) {
  const std::string& dir = req.dir;
  std::string source = MountSourceAt(dir);
  if (source.rfind(kMountSourcePrefix, 0) != 0) {
    return Error(Code::kInvalidArgument, dir + " is not a checkpoint mounted by `specula mount`");
  }
  // EBUSY can be momentary: while a sandbox (a branch, a warm-pool fill)
  // sets up its mount namespace, its copy of the view is a propagation peer
  // of ours until it makes its tree private, and the kernel counts the
  // copy's references too. A view someone really uses stays busy.
  for (int attempt = 0;; ++attempt) {
    if (::umount2(dir.c_str(), UMOUNT_NOFOLLOW) == 0) break;
    if (const int err = errno; err != EBUSY || attempt >= 40) {
      Error e = Error::FromErrno("umount " + dir);
      if (err == EBUSY) {
        e = std::move(e).WithHint("a process has its working directory or a file open below " + dir +
                                  ": leave it, or detach it lazily with `umount -l " + dir + "`");
      }
      return e;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return api::UmountCheckpointResponse{dir};
}

}  // namespace specula::service
