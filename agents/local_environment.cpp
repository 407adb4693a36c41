#include "agents/local_environment.h"

#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>

#include "common/spawn.h"

namespace specula::agents {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

ActionOutcome FromSpawn(const SpawnResult& r) {
  ActionOutcome o;
  o.exit_code = r.timed_out ? 124 : r.exit_code;
  o.signal = r.term_signal;
  o.stdout_text = r.out;
  o.stderr_text = r.err;
  o.truncated = r.out_truncated || r.err_truncated;
  o.duration_ms = static_cast<double>(r.duration.count());
  return o;
}

SpawnOptions BashOptions(const LocalEnvironmentOptions& env, std::vector<std::string> argv,
                         std::chrono::milliseconds timeout) {
  SpawnOptions so;
  so.argv = std::move(argv);
  so.env_set = env.env_set;
  so.env_set.push_back("W=" + env.workdir);
  so.cwd = env.workdir;
  so.timeout = timeout;
  so.output_cap = env.output_cap;
  return so;
}

// Branches yield the CPU to the committed path (the daemon does this with the
// policy's cgroup cpu.weight). Runs between fork and exec: a bare syscall.
int LowerPriority(void*) {
  return ::setpriority(PRIO_PROCESS, 0, 10) == 0 ? 0 : errno;
}

// Runs in the branch: hides the committed work dir behind the branch's copy
// in a private mount namespace, then runs the command as the namespace's pid 1
// so everything it started dies with it. $1 pid file, $2 copy, $3 work dir,
// $4 command. `exec` keeps the pid written to the pid file as unshare's, so
// killing it kills the branch (--kill-child).
constexpr const char* kBranchScript =
    "echo $$ > \"$1\" && exec unshare --mount --pid --fork --kill-child -- "
    "bash -c 'mount --bind \"$1\" \"$2\" && cd \"$2\" && exec bash -c \"$3\"' "
    "branch \"$2\" \"$3\" \"$4\"";

}  // namespace

LocalSequentialEnvironment::LocalSequentialEnvironment(LocalEnvironmentOptions options)
    : options_(std::move(options)) {}

Result<BranchId> LocalSequentialEnvironment::Speculate(const std::string&,
                                                       std::chrono::milliseconds) {
  return Error(Code::kUnavailable, "local-sequential environment does not speculate");
}

Result<std::optional<ActionOutcome>> LocalSequentialEnvironment::PeekBranch(const BranchId& b) {
  return Error(Code::kNotFound, "no branch " + b);
}

Result<CommitResult> LocalSequentialEnvironment::Commit(const std::string& command,
                                                        std::chrono::milliseconds timeout) {
  if (options_.workdir.empty()) return Error(Code::kInvalidArgument, "commit: no work dir");
  SPECULA_ASSIGN_OR_RETURN(SpawnResult r,
                           Spawn(BashOptions(options_, {"bash", "-c", command}, timeout))
                               .Context("commit: run bash"));
  CommitResult c;
  c.outcome = FromSpawn(r);
  return c;
}

SpeculativeLocalEnvironment::SpeculativeLocalEnvironment(LocalEnvironmentOptions options)
    : options_(std::move(options)), sequential_(options_) {}

SpeculativeLocalEnvironment::~SpeculativeLocalEnvironment() { DiscardAll(/*wait=*/true); }

bool SpeculativeLocalEnvironment::CanSpeculate(const std::string& command) {
  // Background jobs would outlive the branch's namespace; signals would act
  // on processes outside the copy (the daemon contains both, with CRIU).
  // Talking to a local service reaches the committed path's server, which
  // sees the work dir, not the branch's copy.
  for (const char* word : {"nohup", "setsid", "disown", "daemon", "kill", "127.0.0.1", "localhost"}) {
    if (command.find(word) != std::string::npos) return false;
  }
  // A single '&' (not "&&", not a redirection such as "2>&1" or "&>") starts a
  // background job.
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] != '&') continue;
    bool prev_amp = i > 0 && command[i - 1] == '&';
    bool next_amp = i + 1 < command.size() && command[i + 1] == '&';
    bool redir = (i > 0 && command[i - 1] == '>') ||
                 (i + 1 < command.size() && command[i + 1] == '>');
    if (!prev_amp && !next_amp && !redir) return false;
  }
  return true;
}

Result<BranchId> SpeculativeLocalEnvironment::Speculate(const std::string& command,
                                                        std::chrono::milliseconds timeout) {
  if (!CanSpeculate(command)) {
    return Error(Code::kFailedPrecondition,
                 "test environment cannot speculate a command that starts background processes");
  }
  Reap(/*wait=*/false);
  std::lock_guard lock(mu_);
  BranchId id = "b" + std::to_string(next_id_++);
  auto branch = std::make_unique<Branch>();
  branch->command = TrimCommand(command);
  branch->dir = options_.workdir + ".branches/" + id;
  Branch* raw = branch.get();
  branches_[id] = std::move(branch);
  raw->worker = std::thread([this, raw, timeout] { RunBranch(raw, timeout); });
  return id;
}

void SpeculativeLocalEnvironment::RunBranch(Branch* branch, std::chrono::milliseconds timeout) {
  auto finish = [&](Result<ActionOutcome> r) {
    std::lock_guard lock(mu_);
    branch->outcome = std::move(r);
    branch->done = true;
    done_cv_.notify_all();
  };
  std::error_code ec;
  fs::create_directories(branch->dir, ec);
  if (ec) return finish(Error(Code::kInternal, "branch: mkdir " + branch->dir + ": " + ec.message()));
  auto discarded = [&] {
    std::lock_guard lock(mu_);
    return branch->discarded;
  };
  if (discarded()) return finish(Error(Code::kAborted, "branch discarded"));
  SpawnOptions copy;
  copy.argv = {"cp", "-a", options_.workdir + "/.", branch->dir + "/tree"};
  fs::create_directories(branch->dir + "/tree", ec);
  auto cr = Spawn(copy);
  if (!cr.ok() || !cr->success()) {
    return finish(Error(Code::kInternal, "branch: copy work dir: " +
                                             (cr.ok() ? ErrorLines(cr->err) : cr.error().message())));
  }
  SpawnOptions so = BashOptions(options_,
                                {"bash", "-c", kBranchScript, "branch", branch->dir + "/pid",
                                 branch->dir + "/tree", options_.workdir, branch->command},
                                timeout);
  so.child_setup = &LowerPriority;
  if (discarded()) return finish(Error(Code::kAborted, "branch discarded"));
  auto r = Spawn(so);
  if (!r.ok()) return finish(std::move(r).error().Context("branch: run"));
  finish(FromSpawn(*r));
}

Result<std::optional<ActionOutcome>> SpeculativeLocalEnvironment::PeekBranch(const BranchId& id) {
  std::lock_guard lock(mu_);
  auto it = branches_.find(id);
  if (it == branches_.end()) return Error(Code::kNotFound, "no branch " + id);
  if (!it->second->done) return std::optional<ActionOutcome>();
  if (!it->second->outcome->ok()) return it->second->outcome->error();
  return std::optional<ActionOutcome>(it->second->outcome->value());
}

void SpeculativeLocalEnvironment::KillIfRunning(Branch& b) {
  {
    std::lock_guard lock(mu_);
    if (b.done) return;
  }
  // The pid its wrapper recorded is unshare's; --kill-child takes the
  // branch's namespace down with it. No pid file yet means the worker is
  // still copying: it sees `discarded` and never starts the command (or, in
  // a tiny window, runs it to completion in its own copy).
  std::ifstream pidf(b.dir + "/pid");
  long pid = 0;
  if ((pidf >> pid) && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

void SpeculativeLocalEnvironment::DiscardAll(bool wait) {
  std::map<BranchId, std::unique_ptr<Branch>> doomed;
  {
    std::lock_guard lock(mu_);
    doomed.swap(branches_);
    for (auto& [id, b] : doomed) b->discarded = true;
  }
  for (auto& [id, b] : doomed) {
    KillIfRunning(*b);
    graveyard_.push_back(std::move(b));
  }
  Reap(wait);
}

void SpeculativeLocalEnvironment::Reap(bool wait) {
  for (auto it = graveyard_.begin(); it != graveyard_.end();) {
    Branch& b = **it;
    bool done;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        done = b.done;
      }
      if (done || !wait) break;
      KillIfRunning(b);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!done) {
      ++it;
      continue;
    }
    if (b.worker.joinable()) b.worker.join();
    std::error_code ec;
    fs::remove_all(b.dir, ec);
    it = graveyard_.erase(it);
  }
  std::error_code ec;
  fs::remove(options_.workdir + ".branches", ec);  // only if empty
}

Status SpeculativeLocalEnvironment::Abort() {
  DiscardAll(/*wait=*/true);
  return Status::Ok();
}

Result<CommitResult> SpeculativeLocalEnvironment::Commit(const std::string& command,
                                                         std::chrono::milliseconds timeout) {
  std::string key = TrimCommand(command);
  std::unique_ptr<Branch> chosen;
  BranchId chosen_id;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, b] : branches_) {
      if (b->command == key) {
        chosen_id = id;
        chosen = std::move(b);
        branches_.erase(id);
        break;
      }
    }
  }
  auto t0 = Clock::now();
  if (chosen) {
    chosen->worker.join();
    double waited = MsSince(t0);
    DiscardAll(/*wait=*/false);
    if (chosen->outcome->ok()) {
      SpawnOptions sync;
      // --checksum: rsync's quick check (size + mtime in whole seconds) would
      // skip a same-size edit made within the same second, losing it.
      sync.argv = {"rsync", "-aH", "--checksum", "--delete", chosen->dir + "/tree/", options_.workdir + "/"};
      auto sr = Spawn(sync);
      std::error_code ec;
      fs::remove_all(chosen->dir, ec);
      fs::remove(options_.workdir + ".branches", ec);  // only if empty
      if (!sr.ok()) return std::move(sr).error().Context("promote " + chosen_id + ": rsync");
      if (!sr->success()) {
        return Error(Code::kInternal, "promote " + chosen_id + ": rsync: " + ErrorLines(sr->err));
      }
      CommitResult c;
      c.hit = true;
      c.branch = chosen_id;
      c.outcome = chosen->outcome->value();
      c.saved_ms = std::max(0.0, c.outcome.duration_ms - waited);
      return c;
    }
    // A branch that failed to run is no result: fall through to a real run.
    std::error_code ec;
    fs::remove_all(chosen->dir, ec);
  } else {
    DiscardAll(/*wait=*/false);
  }
  return sequential_.Commit(command, timeout);
}

}  // namespace specula::agents
