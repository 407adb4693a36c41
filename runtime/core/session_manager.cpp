#include "runtime/core/session_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <thread>

#include "common/crash_point.h"
#include "common/files.h"
#include "common/time.h"
#include "policies/containment.h"
#include "policies/policy_parser.h"
#include "runtime/api/match.h"
#include "runtime/api/validate.h"
#include "runtime/apply/apply.h"
#include "runtime/core/crash_recovery.h"
#include "runtime/core/layer_squash.h"
#include "runtime/core/session_base.h"
#include "runtime/core/session_internal.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox_watch.h"

namespace specula::core {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// Absolute and normalised (the sandbox's spec validation wants that); the
// state dir may be given relative or with a trailing slash.
std::vector<std::string> MaskedHostPaths(const SessionManagerOptions& o) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& p) {
    if (p.empty()) return;
    std::error_code ec;
    std::string n = std::filesystem::absolute(p, ec).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    if (!ec && n != "/") out.push_back(n);
  };
  add(o.state_dir);
  for (const auto& p : o.masked_paths) add(p);
  return out;
}

}  // namespace

const char* ToString(BranchState s) {
  switch (s) {
    case BranchState::kStarting: return "starting";
    case BranchState::kRunning: return "running";
    case BranchState::kBlocked: return "blocked";
    case BranchState::kDone: return "done";
    case BranchState::kPromoted: return "promoted";
    case BranchState::kDiscarded: return "discarded";
    case BranchState::kFailed: return "failed";
  }
  return "?";
}

const char* ToString(ChangeKind k) {
  switch (k) {
    case ChangeKind::kAdded: return "added";
    case ChangeKind::kChanged: return "changed";
    case ChangeKind::kDeleted: return "deleted";
  }
  return "?";
}

std::optional<BranchState> StateFromString(const std::string& s) {
  for (auto st : {BranchState::kStarting, BranchState::kRunning, BranchState::kBlocked, BranchState::kDone,
                  BranchState::kPromoted, BranchState::kDiscarded, BranchState::kFailed}) {
    if (s == ToString(st)) return st;
  }
  return std::nullopt;
}

std::string ResultToJson(const sandbox::ActionResult& r) {
  nlohmann::json j{{"exit_code", r.exit_code},          {"signal", r.signal},
                   {"timed_out", r.timed_out},          {"stdout", r.stdout_data},
                   {"stderr", r.stderr_data},           {"stdout_truncated", r.stdout_truncated},
                   {"stderr_truncated", r.stderr_truncated}, {"duration_ms", r.duration.count()}};
  // Actions may print anything; invalid UTF-8 must not make the record fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<sandbox::ActionResult> ResultFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  sandbox::ActionResult r;
  r.exit_code = j.value("exit_code", -1);
  r.signal = j.value("signal", 0);
  r.timed_out = j.value("timed_out", false);
  r.stdout_data = j.value("stdout", std::string());
  r.stderr_data = j.value("stderr", std::string());
  r.stdout_truncated = j.value("stdout_truncated", false);
  r.stderr_truncated = j.value("stderr_truncated", false);
  r.duration = milliseconds(j.value("duration_ms", int64_t{0}));
  return r;
}

bool IsFinal(BranchState s) {
  return s == BranchState::kPromoted || s == BranchState::kDiscarded || s == BranchState::kFailed;
}

Result<std::unique_ptr<SessionManager>> SessionManager::Open(SessionManagerOptions opts) {
  if (!opts.create_sandbox) opts.create_sandbox = &sandbox::Sandbox::Create;
  if (!opts.create_restored_sandbox) opts.create_restored_sandbox = &sandbox::Sandbox::CreateRestored;
  if (opts.criu.kdat_dir.empty()) opts.criu.kdat_dir = opts.state_dir + "/criu-run";
  if (opts.cgroup_parent.empty()) opts.cgroup_parent = sandbox::InstanceCgroupParent(opts.state_dir);
  std::unique_ptr<SessionManager> m(new SessionManager(std::move(opts)));
  // A crashed daemon's sandboxes may still run, rooted in overlays of this
  // state dir, possibly holding the layer filesystem in their own mount
  // namespace: they go before the store (re)mounts it.
  SPECULA_TRY_CTX(KillForeignUsers(m->opts_.state_dir).status(), "open " + m->opts_.state_dir);
  SPECULA_ASSIGN_OR_RETURN(m->store_, store::CheckpointStore::Open(m->opts_.state_dir));
  SPECULA_ASSIGN_OR_RETURN(m->criu_, criu::CriuDriver::Create(m->opts_.criu));
  SPECULA_TRY_CTX(m->RecoverAfterCrash(), "open " + m->opts_.state_dir);
  // Shared by every sandbox: each would otherwise fork a mapping namespace
  // (~0.2 ms) and run the BPF verifier (~0.3 ms) on the speculate path.
  if (auto idmap = sandbox::MappingUserns::Create(sandbox::IdRange{}); idmap.ok()) {
    m->idmap_ = std::move(*idmap);
  } else {
    spdlog::debug("open: no shared mapping user namespace ({}); each sandbox makes its own",
                  idmap.error().ToString());
  }
  SPECULA_ASSIGN_OR_RETURN(m->device_filter_, sandbox::DeviceFilterProgram::Load());

  // After the sandboxes are gone and interrupted promotes are settled: what
  // is left unrecorded (an image or layer of a checkpoint that never reached
  // the database) is garbage.
  SPECULA_TRY_CTX(m->store_->RemoveOrphans().status(), "open " + m->opts_.state_dir);
  if (m->opts_.instrument) m->instr_ = std::make_unique<instrument::Instrumentation>(m->opts_.instrumentation);
  m->reaper_ = std::make_unique<BackgroundQueue>();
  if (m->opts_.pool_per_session > 0) m->pooler_ = std::make_unique<BackgroundQueue>(/*nice=*/0);
  // Sessions survive a restart; live branches do not (their sandboxes were
  // killed above): their records become discarded.
  SPECULA_ASSIGN_OR_RETURN(auto sessions, m->store_->ListSessions());
  for (auto& rec : sessions) {
    auto s = std::make_shared<Session>();
    if (rec.policy_text.empty()) {
      s->policy = policy::DefaultPolicy();
    } else {
      auto p = policy::ParsePolicy(rec.policy_text, rec.policy_path.empty() ? "session-policy" : rec.policy_path,
                                   policy::ShippedResolver());
      if (!p.ok()) return std::move(p).error().Context("reload session " + rec.id);
      s->policy = std::move(*p);
    }
    SPECULA_ASSIGN_OR_RETURN(auto branches, m->store_->ListBranches(rec.id));
    for (const auto& b : branches) {
      auto st = StateFromString(b.state);
      if (st && IsFinal(*st)) continue;
      spdlog::warn("branch {} ({}) was {} when the previous daemon stopped: discarded", b.id, b.command, b.state);
      store::BranchUpdate u;
      u.state = ToString(BranchState::kDiscarded);
      u.reason = "discarded: daemon restart (crash recovery)";
      SPECULA_TRY(m->store_->UpdateBranch(b.id, u));
    }
    s->rec = rec;
    m->sessions_[rec.id] = std::move(s);
  }
  return m;
}

SessionManager::~SessionManager() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) {
    std::lock_guard op(s->op_mu);
    DiscardAllLocked(*s, "discarded: daemon stopped");
    DrainPool(*s);
  }
  // Fills in flight see the pool closed and tear down what they made.
  if (pooler_) pooler_->Drain();
  if (reaper_) reaper_->Drain();
  // The instance's cgroup parent was made for this manager's sandboxes
  // (SandboxCgroup::Create); with them gone it is given back. In the daemon
  // the sandbox watch also removes it once the daemon is gone, crash or not.
  if (Status st = sandbox::RemoveCgroupParent(opts_.cgroup_parent); !st.ok()) {
    spdlog::debug("close: cgroup parent {}: {}", opts_.cgroup_parent, st.error().ToString());
  }
}

// SIGKILL to every process of one sandbox, by its cgroup2 dir.
void KillCgroup(const std::string& cgroup2_dir) {
  if (cgroup2_dir.empty()) return;
  int fd = ::open((cgroup2_dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (::write(fd, "1", 1) != 1) spdlog::debug("cgroup.kill {}: {}", cgroup2_dir, std::strerror(errno));
  ::close(fd);
}

void SessionManager::BeginShutdown() {
  if (shutting_down_.exchange(true)) return;
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) all.push_back(s);
  }
  size_t killed = 0;
  for (auto& s : all) {
    std::vector<std::string> cgroups;
    {
      std::lock_guard lock(s->mu);
      if (!s->committing_cgroup.empty()) cgroups.push_back(s->committing_cgroup);
      for (auto& [id, b] : s->live) {
        std::lock_guard bl(b->mu);
        if (b->sandbox && !b->finished) cgroups.push_back(b->sandbox->cgroup2_path());
      }
    }
    for (const auto& c : cgroups) KillCgroup(c);
    killed += cgroups.size();
  }
  spdlog::info("shutdown: stopped {} running action(s)", killed);
}

Result<std::shared_ptr<SessionManager::Session>> SessionManager::FindSession(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return Error(Code::kNotFound, "no session " + id);
  return it->second;
}

Result<std::string> SessionManager::ResolveSession(const std::string& id_or_name) {
  std::lock_guard lock(mu_);
  if (sessions_.contains(id_or_name)) return id_or_name;
  for (const auto& [id, s] : sessions_) {
    if (s->rec.name == id_or_name) return id;
  }
  return Error(Code::kNotFound, "no session with id or name " + id_or_name)
      .WithHint("`specula session ls` lists the live sessions, with their names");
}

Result<std::shared_ptr<SessionManager::Branch>> SessionManager::FindBranch(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = branches_.find(id);
  if (it == branches_.end()) return Error(Code::kNotFound, "no live branch " + id);
  return it->second;
}

Result<SessionInfo> SessionManager::CreateSession(const CreateSessionRequest& req) {
  SPECULA_TRY(CheckSessionBase(req.base, opts_.state_dir));
  // The parser refuses lossy paths into the default state dir; this daemon
  // may run with another one.
  SPECULA_TRY(policy::CheckLossyAvoids(req.policy, opts_.state_dir, "the daemon's state dir"));
  // The daemon's socket: a lossy bind of it is the daemon itself in the
  // branch (masking cannot help, the bind is the host's file).
  for (const std::string& p : MaskedHostPaths(opts_)) {
    SPECULA_TRY(policy::CheckLossyAvoids(req.policy, p, "the daemon's socket or state"));
  }
  if (req.initial_cwd.empty() || req.initial_cwd[0] != '/') {
    return Error(Code::kInvalidArgument, "initial cwd must be absolute");
  }
  SPECULA_TRY(api::ValidateNormalisations(req.policy.speculation.normalisations));
  if (req.policy.speculation.max_concurrent_branches == 0) {
    return Error(Code::kInvalidArgument, "policy speculation.max_concurrent_branches must be > 0");
  }
  std::lock_guard creating(create_mu_);
  if (!req.name.empty()) {
    std::lock_guard lock(mu_);
    for (const auto& [id, other] : sessions_) {
      if (other->rec.name == req.name) {
        return Error(Code::kAlreadyExists, "a session named '" + req.name + "' exists: " + id)
            .WithHint("pick another name, or remove it first: specula session rm " + id);
      }
    }
  }
  auto s = std::make_shared<Session>();
  s->policy = req.policy;
  SPECULA_ASSIGN_OR_RETURN(s->rec.id, store::NewId('s'));
  s->rec.name = req.name.empty() ? s->rec.id : req.name;
  s->rec.base = req.base;
  s->rec.target = req.target == policy::PromoteTarget::kBase ? "base" : "layer";
  s->rec.policy_text = req.policy_text;
  s->rec.policy_path = req.policy_path;
  s->rec.created_ms = NowMs();
  SPECULA_TRY(store_->PutSession(s->rec));
  store::CheckpointRecord root;
  SPECULA_ASSIGN_OR_RETURN(root.id, store::NewId('c'));
  root.session = s->rec.id;
  root.created_ms = s->rec.created_ms;
  sandbox::ShellState shell;
  shell.cwd = req.initial_cwd;
  root.shell_state = shell.Serialize();
  SPECULA_TRY(store_->PutCheckpointAsHead(root));
  s->rec.head = root.id;
  {
    std::lock_guard lock(mu_);
    sessions_[s->rec.id] = s;
  }
  spdlog::info("session {} created over {} (target {})", s->rec.id, s->rec.base, s->rec.target);
  RefillPool(s);
  return SessionInfo{s->rec, 0};
}

Result<std::vector<SessionInfo>> SessionManager::ListSessions() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) all.push_back(s);
  }
  std::vector<SessionInfo> out;
  for (auto& s : all) {
    std::lock_guard lock(s->mu);
    out.push_back(SessionInfo{s->rec, s->live.size()});
  }
  return out;
}

Result<SessionInfo> SessionManager::ShowSession(const std::string& id) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(id));
  std::lock_guard lock(s->mu);
  return SessionInfo{s->rec, s->live.size()};
}

Status SessionManager::DestroySession(const std::string& id) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(id));
  {
    std::lock_guard op(s->op_mu);
    DiscardAllLocked(*s, "discarded: session destroyed");
    DrainPool(*s);
    WaitReaped(*s);  // their overlays stack the layers that go next (and pool fills in flight)
    SPECULA_TRY_CTX(store_->DeleteSession(id), "destroy session " + id);
  }
  {
    std::lock_guard lock(mu_);
    sessions_.erase(id);
  }
  ReturnFreedMemory();  // a session's history, records and pool go at once
  return Status::Ok();
}

Result<std::unique_ptr<sandbox::Sandbox>> SessionManager::ForkSandbox(const Session& s,
                                                                     const store::CheckpointRecord& ckpt,
                                                                     Branch& b, bool speculative) {
  const std::string& branch_id = b.id;
  std::string dir = store_->BranchDir(branch_id);
  sandbox::SandboxSpec spec;
  spec.base = s.rec.base;
  SPECULA_ASSIGN_OR_RETURN(spec.layers, CheckpointLayerDirs(ckpt.id));
  // The branch's writes go into a volume with the policy's disk limit; its
  // upper's root takes the attributes the overlay's `/` must show.
  store::VolumeRequest vr;
  vr.stack = ckpt.layers;
  vr.disk_limit = s.policy.resources.upper_disk_bytes;
  vr.root_like = spec.layers.empty() ? s.rec.base : spec.layers.back();
  SPECULA_ASSIGN_OR_RETURN(auto vol, store_->CreateBranchVolume(branch_id, vr));
  CrashPoint("volume.after-create");
  SPECULA_TRY(MakeDirs(dir + "/run", 0700));
  spec.upper_dir = vol.upper;
  spec.work_dir = vol.work;
  spec.run_dir = dir + "/run";
  spec.name = branch_id;
  spec.cgroup_parent = opts_.cgroup_parent;
  if (idmap_ && idmap_->range() == spec.ids) spec.idmap = idmap_;
  spec.device_filter = device_filter_;
  // Binds for a CRIU restore in a user namespace (criu_driver.h).
  if (std::string stage = criu_->RestoreStageDir(); !stage.empty()) spec.restore_stage_dir = stage + "/" + branch_id;
  // The runtime's own state (every session's layers, the database, CRIU
  // images, journals) is host data a branch could otherwise read through
  // the overlay's lower layer: a session over / shows the state dir.
  spec.masked_host_paths = MaskedHostPaths(opts_);
  spec.policy = s.policy;
  if (speculative) {
    spec.policy.resources.cpu_weight = SpeculativeCpuWeight(s.policy.resources.cpu_weight);
  }
  SPECULA_ASSIGN_OR_RETURN(spec.shell, sandbox::ShellState::Parse(ckpt.shell_state));
  if (instr_) {
    // Lossy pre-images go into the branch dir: a discard (or crash recovery)
    // restores them from there. The lossy binds must be in the spec.
    SPECULA_ASSIGN_OR_RETURN(b.probe, instr_->Prepare(s.policy, dir));
    spec.binds.insert(spec.binds.end(), b.probe->binds().begin(), b.probe->binds().end());
  }
  auto attach = [&b](Result<std::unique_ptr<sandbox::Sandbox>> sb) -> Result<std::unique_ptr<sandbox::Sandbox>> {
    if (sb.ok() && b.probe) {
      if (Status st = b.probe->Attach(**sb); !st.ok()) {
        (void)(*sb)->Destroy();
        return std::move(st).error().Context("instrument branch " + b.id);
      }
    }
    // A route out only where the egress guard filters it: the uplink itself
    // lets anything through. Unguarded, allowlist and lossy fail closed to
    // loopback.
    if (sb.ok() && b.probe && b.probe->guarded()) {
      if (Status st = (*sb)->StartUplink(); !st.ok()) {
        (void)(*sb)->Destroy();
        return std::move(st).error().Context("network uplink of branch " + b.id);
      }
    }
    return sb;
  };
  if (!ckpt.has_process_image) return attach(opts_.create_sandbox(spec));
  const criu::CriuDriver* driver = criu_.get();
  std::string image = ckpt.image_dir;
  std::string work = dir + "/criu";
  uint64_t image_bytes = ckpt.image_bytes;
  return attach(opts_.create_restored_sandbox(spec, [driver, image, work, image_bytes](
                                                        const sandbox::RestoreTarget& t) -> Result<pid_t> {
    criu::RestoreRequest rr;
    rr.image_dir = image;
    rr.image_bytes = image_bytes;
    rr.work_dir = work;
    rr.root = t.root;
    rr.external_mounts = t.external_mounts;
    rr.cgroup_paths = t.cgroup_paths;
    SPECULA_ASSIGN_OR_RETURN(auto res, driver->Restore(rr));
    return res.pid;
  }));
}

void SessionManager::FinishProbe(Branch& b) {
  if (!b.probe) return;
  instrument::FinishOptions fo;
  fo.processes_before = b.parent_has_image;  // restored processes the tracer never saw start
  auto rep = b.probe->Finish(fo);
  if (!rep.ok()) {
    spdlog::warn("branch {}: instrumentation report: {}", b.id, rep.error().ToString());
    return;
  }
  std::lock_guard lock(b.mu);
  b.report = std::move(*rep);
}

Result<std::string> SessionManager::Speculate(const std::string& session, const std::string& command,
                                              milliseconds timeout, const std::string& origin,
                                              const std::string& from_head) {
  SPECULA_ASSIGN_OR_RETURN(auto s, FindSession(session));
  SPECULA_TRY(api::ValidateCommand(command));
  std::lock_guard op(s->op_mu);
  if (shutting_down_) {
    return Error(Code::kUnavailable, "speculad is stopping: no new branch").WithHint("speculate again once it is back");
  }
  auto b = std::make_shared<Branch>();
  b->normalised = api::NormaliseCommand(command, s->policy.speculation.normalisations);
  {
    std::lock_guard lock(s->mu);
    // A launch for a head (transparent speculation) never doubles a live
    // branch of that head the match rule calls the same command: checked
    // and started under the op lock, so a client's speculate cannot slip in
    // between.
    if (!from_head.empty() && s->rec.head == from_head) {
      for (auto& [id, other] : s->live) {
        std::lock_guard bl(other->mu);
        if (other->parent_checkpoint == from_head && other->normalised == b->normalised && !other->cancelled &&
            other->state != BranchState::kFailed) {
          return other->id;
        }
      }
    }
    if (s->live.size() >= s->policy.speculation.max_branches_per_session) {
      return Error(Code::kResourceExhausted,
                   "session " + session + " already has " + std::to_string(s->live.size()) +
                       " branches (policy speculation.max_branches_per_session)");
    }
    if (!from_head.empty() && s->rec.head != from_head) {
      return Error(Code::kAborted, "session " + session + " moved on from " + from_head + " to " + s->rec.head);
    }
    b->parent_checkpoint = s->rec.head;
  }
  // A sandbox from the warm pool: the branch takes its id, sandbox and probe
  // (its action still waits for a running slot like any other).
  // A pooled sandbox was forked from this very head, so what the branch
  // needs of the head's checkpoint row is already known (skipping the read
  // is a tenth of speculate -> running, docs/benchmarks.md).
  auto pooled = TakePooled(*s, b->parent_checkpoint);
  if (pooled) {
    b->id = pooled->id;
    b->sandbox = std::move(pooled->sandbox);
    b->probe = std::move(pooled->probe);
    b->parent_has_image = pooled->parent_has_image;
    // The pool is refilled by the branch's worker once the action runs
    // (RunBranch): a fill started here would take a core from this
    // branch's start on a small box.
  } else {
    SPECULA_ASSIGN_OR_RETURN(b->id, store::NewId('b'));
  }
  auto pooled_failed = [&](Error e) -> Error {
    if (b->sandbox) (void)b->sandbox->Destroy();
    if (b->probe) (void)b->probe->Discard();
    (void)RemoveTree(store_->BranchDir(b->id));
    if (pooled) RefillPool(s);  // no worker will: the take is made again here
    return e;
  };
  if (!pooled) {
    auto ckpt = store_->GetCheckpoint(b->parent_checkpoint);
    if (!ckpt.ok()) return pooled_failed(std::move(ckpt).error());
    b->parent_has_image = ckpt->has_process_image;
  }
  b->session = session;
  b->command = command;
  b->origin = origin;
  b->created_ms = NowMs();
  store::BranchRecord rec{b->id, session, b->parent_checkpoint, command,
                          ToString(BranchState::kStarting), "", b->created_ms, b->created_ms};
  rec.origin_json = origin;
  // Relaxed (store::Durability): a restart discards a live branch anyway,
  // and the WAL's fsync would be half of speculate -> running.
  if (Status st = store_->PutBranch(rec, store::Durability::kRelaxed); !st.ok()) {
    return pooled_failed(std::move(st).error());
  }
  {
    std::lock_guard lock(s->mu);
    s->live[b->id] = b;
  }
  {
    std::lock_guard lock(mu_);
    branches_[b->id] = b;
  }
  b->worker = std::thread([this, s, b, timeout] { RunBranch(s, b, timeout); });
  return b->id;
}

void SessionManager::RunBranch(std::shared_ptr<Session> s, std::shared_ptr<Branch> b, milliseconds timeout) {
  bool pooled;  // Speculate took the sandbox from the warm pool
  {
    std::lock_guard lock(b->mu);
    pooled = b->sandbox != nullptr;
  }
  // What this branch took from the pool is made again once its action has
  // started (or the branch ended first): the fill is off its critical path.
  struct RefillOnce {
    SessionManager* m;
    const std::shared_ptr<Session>& s;
    bool due;
    void Now() {
      if (due) m->RefillPool(s);
      due = false;
    }
    ~RefillOnce() { Now(); }
  } refill{this, s, pooled};
  // Wait for a running slot (policy.speculation.max_concurrent_branches).
  {
    const uint32_t limit = RunningLimit(s->policy);
    std::unique_lock lock(s->slot_mu);
    s->slot_cv.wait(lock, [&] {
      std::lock_guard bl(b->mu);
      return b->cancelled || s->running < limit;
    });
    ++s->running;
  }
  auto finish = [&](BranchState st, std::string error) {
    {
      std::lock_guard lock(s->slot_mu);
      --s->running;
    }
    s->slot_cv.notify_all();
    {
      std::lock_guard lock(b->mu);
      if (!b->cancelled) b->state = st;
      b->error = std::move(error);
      b->finished = true;
      st = b->state;
    }
    b->cv.notify_all();
    // Result, report and upper size go into the record now: a crash later
    // still leaves them for branch.show. A discard adds its reason itself.
    if (Status u = RecordBranch(*b, st, ""); !u.ok()) {
      spdlog::warn("branch {}: record state: {}", b->id, u.ToString());
    }
  };
  bool cancelled;
  {
    std::lock_guard lock(b->mu);
    cancelled = b->cancelled;
  }
  if (cancelled) return finish(BranchState::kDiscarded, "");
  std::unique_ptr<sandbox::Sandbox> fresh;
  if (!pooled) {
    auto ckpt = store_->GetCheckpoint(b->parent_checkpoint);
    if (!ckpt.ok()) return finish(BranchState::kFailed, ckpt.error().ToString());
    auto sb = ForkSandbox(*s, *ckpt, *b, /*speculative=*/true);
    if (!sb.ok()) {
      spdlog::warn("branch {}: fork from {}: {}", b->id, b->parent_checkpoint, sb.error().ToString());
      return finish(BranchState::kFailed, "fork from " + b->parent_checkpoint + ": " + sb.error().ToString());
    }
    fresh = std::move(*sb);
  }
  sandbox::Sandbox* box = nullptr;
  {
    std::lock_guard lock(b->mu);
    if (fresh) b->sandbox = std::move(fresh);
    box = b->sandbox.get();
    cancelled = b->cancelled;
    if (!cancelled) {
      b->state = BranchState::kRunning;
      b->run_started = steady_clock::now();
    }
  }
  // finish() takes b->mu itself.
  if (cancelled) return finish(BranchState::kDiscarded, "");
  (void)store_->UpdateBranch(b->id, ToString(BranchState::kRunning), std::nullopt, store::Durability::kRelaxed);
  refill.Now();
  auto r = box->Run(b->command, timeout);
  {
    std::lock_guard lock(b->mu);
    b->run_finished = steady_clock::now();
    if (r.ok()) b->result = std::move(*r);
  }
  if (!r.ok()) return finish(BranchState::kFailed, r.error().ToString());
  NoteDiskLimit(*s, *b);
  FinishProbe(*b);
  // Done: frozen so whatever it left running does not run ahead of the
  // sequential timeline while waiting for the commit.
  if (Status f = box->Freeze(); !f.ok()) {
    return finish(BranchState::kFailed, "freeze: " + f.ToString());
  }
  finish(BranchState::kDone, "");
}

Result<std::vector<std::string>> SessionManager::CheckpointLayerDirs(const std::string& checkpoint) {
  SPECULA_ASSIGN_OR_RETURN(auto c, store_->GetCheckpoint(checkpoint));
  std::vector<std::string> dirs;
  for (const auto& l : c.layers) dirs.push_back(store_->LayerPath(l));
  return dirs;
}

Result<std::string> SessionManager::PromoteLocked(Session& s, Branch& b) {
  sandbox::Sandbox* box = b.sandbox.get();
  SPECULA_ASSIGN_OR_RETURN(auto parent, store_->GetCheckpoint(b.parent_checkpoint));
  store::CheckpointRecord c;
  SPECULA_ASSIGN_OR_RETURN(c.id, store::NewId('c'));
  c.session = s.rec.id;
  c.parent = parent.id;
  c.command = b.command;
  SPECULA_TRY_CTX(box->Thaw(), "promote " + b.id);
  {
    std::lock_guard lock(b.mu);
    b.recorded_upper.reset();  // thawed: its processes may write again
  }
  SPECULA_ASSIGN_OR_RETURN(bool live, box->HasLiveProcesses());
  // The tracer's decision can elide the dump; the cgroup's live-process
  // check stays the safety net: dump if either says so.
  if (b.report && b.report->checkpoint.criu_dump != live) {
    spdlog::info("promote {}: tracer says {} ({}), cgroup says {}: {}", b.id,
                 b.report->checkpoint.criu_dump ? "dump" : "no dump", b.report->checkpoint.reason,
                 live ? "processes alive" : "none alive", live || b.report->checkpoint.criu_dump ? "dumping" : "eliding");
  }
  // A "dump" that only means "could not observe" (untraced, or restored
  // processes the tracer never saw start) adds nothing to the exact cgroup
  // check; a dump decided from a complete trace does.
  bool tracer_saw_need = b.report && b.report->checkpoint.criu_dump && b.report->traced && !b.parent_has_image;
  if (live) {
    // A checkpoint that fills the pids limit could never run another
    // command: its restore alone needs the room (CRIU's helpers count), and
    // every later action restores it. Refuse it: the head stays where it was.
    SPECULA_ASSIGN_OR_RETURN(uint64_t tasks, box->TaskCount());
    const uint64_t limit = s.policy.resources.pids;
    const uint64_t room = std::max<uint64_t>(8, limit / 8);
    if (tasks + room > limit) {
      return Error(Code::kResourceExhausted,
                   "the action left " + std::to_string(tasks) + " tasks running, too close to the policy's pids limit (" +
                       std::to_string(limit) + "): a checkpoint of them could not run another command, so it "
                       "was not kept")
          .WithHint("the head is unchanged; run the command without leaving so many background processes, or "
                    "raise [resources] pids in the policy");
    }
  }
  if (live || tracer_saw_need || !opts_.elide_checkpoints) {
    SPECULA_TRY_CTX(box->DropUplink(), "promote " + b.id);
    criu::DumpRequest dr;
    dr.pid = box->init_pid();
    dr.image_dir = store_->ImageDir(c.id);
    dr.external_mounts = box->ExternalMounts();
    dr.in_user_namespace = box->mapped_root().has_value();
    dr.leave_running = false;  // the sandbox is destroyed right after: see docs/checkpoints.md
    auto dump = criu_->Dump(dr);
    if (dump.ok()) {
      c.has_process_image = true;
      c.image_dir = dr.image_dir;
      c.image_bytes = dump->image_bytes;
      CrashPoint("checkpoint.after-dump");
    } else {
      // Issue 16: a process CRIU cannot checkpoint (a connected TCP socket,
      // a missing capability) must not cost the action its files. They are
      // kept; the processes are not (CRIU resumed them; the destroy below
      // kills them), and the result says why (flag and note, quoting
      // CRIU's error lines: the half written image and its log go).
      const std::string why = dump.error().message();
      spdlog::warn("promote {}: the processes the action left cannot be checkpointed; kept its files without them: {}",
                   b.id, why);
      b.promote_notes.push_back({"", kProcessesNotKept,
                                 why + "; the files are kept. Processes the next command needs must be started "
                                       "again, or left in a state CRIU can checkpoint"});
      (void)RemoveTree(dr.image_dir);
    }
  }
  c.shell_state = box->shell_state().Serialize();
  // Nothing runs in the sandbox any more (dumped, or nothing was alive): the
  // limit goes before its destroy links up hard-link aliases and the seal
  // renames, which a full volume would refuse with EDQUOT.
  SPECULA_TRY_CTX(store_->LiftDiskLimit(b.id), "promote " + b.id);
  SPECULA_TRY_CTX(box->Destroy(), "promote " + b.id);
  b.sandbox.reset();
  std::string upper = store_->BranchUpperDir(b.id);
  c.layers = parent.layers;
  if (s.rec.target == "layer") {
    SPECULA_ASSIGN_OR_RETURN(auto layer, store_->SealLayer(s.rec.id, upper));
    c.layers.push_back(layer.id);
    c.layer_bytes = layer.bytes;
  } else {
    apply::ApplyOptions ao;
    ao.promotion = s.policy.promotion;
    ao.journal_dir = store_->JournalDir() + "/" + s.rec.id + "." + c.id;  // crash recovery finds the base by session
    auto rep = apply::ApplyUpper(upper, s.rec.base, ao);
    if (!rep.ok()) return std::move(rep).error().Context("promote " + b.id + " onto " + s.rec.base);
    c.apply_record = ao.journal_dir;
    c.layer_bytes = rep->bytes;
    for (const auto& n : rep->stripped) b.promote_notes.push_back({n.path, "stripped", n.detail});
    for (const auto& n : rep->rejected) b.promote_notes.push_back({n.path, "not applied", n.detail});
    for (const auto& n : b.promote_notes) {
      if (n.path.empty()) continue;  // not a file: logged where it was decided
      spdlog::warn("promote {} onto {}: {} {}: {} (policy [promotion])", b.id, s.rec.base, n.action, n.path,
                   n.detail);
    }
  }
  SPECULA_ASSIGN_OR_RETURN(c.layers, MaybeSquash(s, std::move(c.layers)));
  // The layer (or the base's journal) and the CRIU image reach the disk
  // before the head that names them: a crash after the head is recorded
  // finds them whole.
  SPECULA_TRY_CTX(store_->SyncFilesystem(), "promote " + b.id);
  c.created_ms = NowMs();
  CrashPoint("checkpoint.before-head");
  SPECULA_TRY(store_->PutCheckpointAsHead(c));
  CrashPoint("checkpoint.after-head");
  {
    std::lock_guard lock(s.mu);
    s.rec.head = c.id;
  }
  // The upper is now the sealed layer (same bytes) or applied to the base.
  std::string reason = "promoted by commit";
  std::string without;
  for (const auto& n : b.promote_notes) {
    if (n.path.empty()) reason += "; " + n.action + ": " + n.detail;
    else without += " " + n.path + " (" + n.action + ": " + n.detail + ")";
  }
  if (!without.empty()) reason += "; onto the base without:" + without;
  SPECULA_TRY(RecordBranch(b, BranchState::kPromoted, reason,
                           s.rec.target == "layer" ? std::optional<uint64_t>(c.layer_bytes) : std::nullopt));
  if (b.probe) {
    if (Status st = b.probe->Keep(); !st.ok()) spdlog::warn("promote {}: {}", b.id, st.ToString());
  }
  {
    std::lock_guard lock(b.mu);
    b.state = BranchState::kPromoted;
  }
  if (Status st = RemoveTree(store_->BranchDir(b.id)); !st.ok()) {
    spdlog::warn("promote {}: cleanup: {}", b.id, st.ToString());
  }
  return c.id;
}

void SessionManager::NoteDiskLimit(const Session& s, const Branch& b) {
  auto u = store_->BranchDiskUsage(b.id);
  if (!u || u->limit == 0) return;
  // The kernel refuses a write that would go over the limit, so a volume
  // that hit it stops short by up to one write: "hit" is within a margin.
  uint64_t margin = std::max<uint64_t>(1ULL << 20, u->limit / 64);
  if (u->used + margin < u->limit) return;
  auto mib = [](uint64_t v) { return static_cast<double>(v) / (1 << 20); };
  spdlog::warn("branch {} of session {} hit its disk limit: its upper holds {:.1f} MiB of the {:.1f} MiB policy '{}' "
               "allows (resources.disk); writes beyond it failed with EDQUOT. Command: {}",
               b.id, s.rec.id, mib(u->used), mib(u->limit), s.policy.name, b.command);
}

Result<std::vector<std::string>> SessionManager::MaybeSquash(Session& s, std::vector<std::string> layers) {
  if (layers.size() <= opts_.squash_threshold) return layers;
  // Merge the oldest half into one layer; the newest stay as they are so a
  // squash is not redone at every promote.
  size_t n = layers.size() - opts_.squash_threshold / 2;
  std::vector<std::string> oldest(layers.begin(), layers.begin() + static_cast<std::ptrdiff_t>(n));
  std::vector<std::string> dirs;
  for (const auto& l : oldest) dirs.push_back(store_->LayerPath(l));
  SPECULA_ASSIGN_OR_RETURN(std::string tmp_id, store::NewId('q'));
  // A volume like a branch's (no limit), forked from the whole stack so its
  // inode numbers stay above every layer's (store/branch_volume.cpp).
  store::VolumeRequest vr;
  vr.stack = layers;
  vr.make_upper = false;  // SquashLayers makes it, with the merged root's attributes
  SPECULA_ASSIGN_OR_RETURN(auto vol, store_->CreateBranchVolume(tmp_id, vr));
  if (Status st = SquashLayers(dirs, vol.upper); !st.ok()) {
    (void)RemoveTree(vol.dir);
    return std::move(st).error().Context("squash " + std::to_string(n) + " layers");
  }
  auto merged = store_->SealLayer(s.rec.id, vol.upper, oldest);
  (void)RemoveTree(vol.dir);  // what is left of the scratch (the volume itself became the layer)
  if (!merged.ok()) return std::move(merged).error().Context("squash " + std::to_string(n) + " layers");
  std::vector<std::string> out{merged->id};
  out.insert(out.end(), layers.begin() + static_cast<std::ptrdiff_t>(n), layers.end());
  spdlog::info("session {}: squashed {} layers into {}", s.rec.id, n, merged->id);
  return out;
}

}  // namespace specula::core
