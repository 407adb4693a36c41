#include "runtime/service/metered_session_service.h"

#include <chrono>
#include <utility>

namespace specula::service {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

MeteredSessionService::MeteredSessionService(SessionService& inner, metrics::Registry& r, CriuSource criu,
                                             PoolSource pool)
    : inner_(inner),
      criu_(std::move(criu)),
      pool_(std::move(pool)),
      sessions_(r.AddGauge("specula_sessions", "Sessions the daemon holds.")),
      live_branches_(r.AddGauge("specula_branches_live",
                                "Branches starting, running, blocked or done (not yet promoted or discarded).")),
      commits_running_(r.AddGauge("specula_commits_running", "action.commit calls running now.")),
      launched_(r.AddCounter("specula_branches_launched_total",
                             "Speculative branches launched by action.speculate.")),
      promoted_(r.AddCounter("specula_branches_promoted_total",
                             "Speculative branches promoted by a commit that matched them (hits).")),
      discarded_(r.AddCounter("specula_branches_discarded_total",
                              "Branches discarded: by action.abort, or by a commit (every other branch of the head).")),
      hits_(r.AddCounter("specula_commit_hits_total", "Commits that promoted a speculative branch.", {"session"})),
      misses_(r.AddCounter("specula_commit_misses_total", "Commits that ran their command themselves.", {"session"})),
      saved_(r.AddCounter("specula_speculation_saved_seconds_total",
                          "Latency callers did not wait for thanks to speculation (the commits' saved_ms).")),
      commit_seconds_(r.AddHistogram("specula_commit_duration_seconds",
                                     "action.commit latency as the caller waits for it.", {"result"},
                                     metrics::LatencyBuckets())),
      fork_seconds_(r.AddHistogram("specula_fork_duration_seconds",
                                   "action.speculate latency: forking a branch from the head (its sandbox, "
                                   "and a CRIU restore when the head has processes).",
                                   {}, metrics::LatencyBuckets())),
      errors_(r.AddCounter("specula_errors_total", "Failed calls by method and error code (docs/error-model.md).",
                           {"method", "code"})),
      speculation_launched_(r.AddCounter("specula_session_speculation_launched_total",
                                         "Branches transparent speculation launched in the session.", {"session"})),
      speculation_hits_(r.AddCounter("specula_session_speculation_hits_total",
                                     "Commits that promoted a branch transparent speculation launched.",
                                     {"session"})),
      process_images_(r.AddGauge("specula_checkpoint_process_images",
                                 "Checkpoints holding a CRIU image of the session's processes (CRIU dumps kept).")),
      process_image_bytes_(r.AddGauge("specula_checkpoint_process_image_bytes",
                                      "Bytes of the CRIU images those checkpoints hold.")),
      criu_calls_(r.AddCounter("specula_criu_calls_total",
                               "CRIU runs: op = dump (a checkpoint of a head's processes) or restore (a branch "
                               "of such a head); result = ok or failed.",
                               {"op", "result"})),
      criu_bytes_(r.AddCounter("specula_criu_bytes_total",
                               "Image bytes successful CRIU dumps wrote (op = dump) and restores read (op = restore).",
                               {"op"})),
      criu_seconds_(r.AddCounter("specula_criu_seconds_total",
                                 "Wall time spent in CRIU runs, failed ones included.", {"op"})),
      pool_sandboxes_(r.AddGauge("specula_pool_sandboxes",
                                 "Warm-pool branch sandboxes: state = ready (prepared from a session's head, "
                                 "idle) or filling (being prepared).",
                                 {"state"})),
      pool_takes_(r.AddCounter("specula_pool_takes_total",
                               "Speculates and missed commits that wanted a warm sandbox: result = hit (took "
                               "one) or miss (none ready: forked on the caller's path).",
                               {"result"})) {
  r.AddCollector([this] { Collect(); });
}

void MeteredSessionService::Collect() {
  auto sessions = inner_.ListSessions({});
  if (!sessions.ok()) {
    errors_.Inc({api::ListSessionsRequest::kMethod, std::string(CodeName(sessions.error().code()))});
    return;
  }
  double live = 0, images = 0, image_bytes = 0;
  // Sessions destroyed since the last scrape drop out.
  speculation_launched_.Clear();
  speculation_hits_.Clear();
  for (const auto& s : *sessions) {
    live += s.live_branches;
    if (s.speculation) {
      speculation_launched_.Set({s.session}, static_cast<double>(s.speculation->launched));
      speculation_hits_.Set({s.session}, static_cast<double>(s.speculation->hits));
    }
    api::ListCheckpointsRequest req;
    req.session = s.session;
    if (auto cps = inner_.ListCheckpoints(req); cps.ok()) {
      for (const auto& c : *cps) {
        if (!c.has_process_image) continue;
        ++images;
        image_bytes += static_cast<double>(c.image_bytes);
      }
    }
  }
  sessions_.Set({}, static_cast<double>(sessions->size()));
  commits_running_.Add({}, 0);  // declared at 0 before the first commit
  live_branches_.Set({}, live);
  process_images_.Set({}, images);
  process_image_bytes_.Set({}, image_bytes);
  criu::CriuCounters c = criu_ ? criu_() : criu::CriuCounters{};
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  criu_calls_.Set({"dump", "ok"}, d(c.dumps - c.dump_failures));
  criu_calls_.Set({"dump", "failed"}, d(c.dump_failures));
  criu_calls_.Set({"restore", "ok"}, d(c.restores - c.restore_failures));
  criu_calls_.Set({"restore", "failed"}, d(c.restore_failures));
  criu_bytes_.Set({"dump"}, d(c.dumped_bytes));
  criu_bytes_.Set({"restore"}, d(c.restored_bytes));
  criu_seconds_.Set({"dump"}, c.dump_seconds);
  criu_seconds_.Set({"restore"}, c.restore_seconds);
  core::PoolStats p = pool_ ? pool_() : core::PoolStats{};
  pool_sandboxes_.Set({"ready"}, d(p.ready));
  pool_sandboxes_.Set({"filling"}, d(p.filling));
  pool_takes_.Set({"hit"}, d(p.hits));
  pool_takes_.Set({"miss"}, d(p.misses));
}

Result<api::CreateSessionResponse> MeteredSessionService::CreateSession(const api::CreateSessionRequest& req) {
  return Count(req.kMethod, inner_.CreateSession(req));
}

Result<std::vector<api::Session>> MeteredSessionService::ListSessions(const api::ListSessionsRequest& req) {
  return Count(req.kMethod, inner_.ListSessions(req));
}

Result<api::Session> MeteredSessionService::ShowSession(const api::ShowSessionRequest& req) {
  return Count(req.kMethod, inner_.ShowSession(req));
}

Result<api::DestroySessionResponse> MeteredSessionService::DestroySession(const api::DestroySessionRequest& req) {
  auto r = Count(req.kMethod, inner_.DestroySession(req));
  if (r.ok()) {
    // A per-session series must not outlive its session.
    hits_.Remove({req.session});
    misses_.Remove({req.session});
  }
  return r;
}

Result<api::RollbackResponse> MeteredSessionService::Rollback(const api::RollbackRequest& req) {
  return Count(req.kMethod, inner_.Rollback(req));
}

Result<api::SpeculateResponse> MeteredSessionService::Speculate(const api::SpeculateRequest& req) {
  auto start = Clock::now();
  auto r = Count(req.kMethod, inner_.Speculate(req));
  if (r.ok()) {
    fork_seconds_.Observe({}, SecondsSince(start));
    launched_.Inc();
  }
  return r;
}

Result<api::CommitResponse> MeteredSessionService::Commit(const api::CommitRequest& req,
                                                          const OutputChunkSink& on_chunk) {
  // The core does not count what a commit discards: every live branch of
  // the session but the promoted one goes (a branch launched meanwhile by
  // transparent speculation may be missed or counted once too often).
  api::ShowSessionRequest show;
  show.session = req.session;
  auto before = inner_.ShowSession(show);
  uint32_t live = before.ok() ? before->live_branches : 0;
  auto start = Clock::now();
  commits_running_.Add({}, 1);
  auto r = Count(req.kMethod, inner_.Commit(req, on_chunk));
  commits_running_.Add({}, -1);
  if (!r.ok()) return r;
  commit_seconds_.Observe({r->hit ? "hit" : "miss"}, SecondsSince(start));
  if (r->hit) {
    hits_.Inc({req.session});
    promoted_.Inc();
  } else {
    misses_.Inc({req.session});
  }
  uint32_t promoted = r->hit ? 1 : 0;
  if (live > promoted) discarded_.Inc({}, live - promoted);
  saved_.Inc({}, r->saved_ms / 1000.0);
  return r;
}

Result<api::AbortResponse> MeteredSessionService::Abort(const api::AbortRequest& req) {
  auto r = Count(req.kMethod, inner_.Abort(req));
  if (r.ok()) discarded_.Inc({}, r->discarded);
  return r;
}

Result<std::vector<api::BranchSummary>> MeteredSessionService::ListBranches(const api::ListBranchesRequest& req) {
  return Count(req.kMethod, inner_.ListBranches(req));
}

Result<api::BranchDetail> MeteredSessionService::ShowBranch(const api::ShowBranchRequest& req) {
  return Count(req.kMethod, inner_.ShowBranch(req));
}

Result<api::BranchDiff> MeteredSessionService::DiffBranch(const api::DiffBranchRequest& req) {
  return Count(req.kMethod, inner_.DiffBranch(req));
}

Result<std::vector<api::Checkpoint>> MeteredSessionService::ListCheckpoints(const api::ListCheckpointsRequest& req) {
  return Count(req.kMethod, inner_.ListCheckpoints(req));
}

Result<api::Checkpoint> MeteredSessionService::ShowCheckpoint(const api::ShowCheckpointRequest& req) {
  return Count(req.kMethod, inner_.ShowCheckpoint(req));
}

Result<api::CheckpointDiff> MeteredSessionService::DiffCheckpoint(const api::DiffCheckpointRequest& req) {
  return Count(req.kMethod, inner_.DiffCheckpoint(req));
}

Result<api::MountCheckpointResponse> MeteredSessionService::MountCheckpoint(
    const api::MountCheckpointRequest& req) {
  return Count(req.kMethod, inner_.MountCheckpoint(req));
}

Result<api::UmountCheckpointResponse> MeteredSessionService::UmountCheckpoint(
    const api::UmountCheckpointRequest& req) {
  return Count(req.kMethod, inner_.UmountCheckpoint(req));
}

}  // namespace specula::service
