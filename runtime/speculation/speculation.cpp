#include "runtime/speculation/speculation.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "speculators/builtin.h"

namespace specula::speculation {

double IdleCores() {
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  double load = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "re")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = 0;
    std::fclose(f);
  }
  double idle = static_cast<double>(cpus > 0 ? cpus : 1) - load;
  return idle > 0 ? idle : 0;
}

Speculation::Speculation(LaunchFn launch, std::function<double()> idle_cores)
    : launch_(std::move(launch)),
      idle_cores_(std::move(idle_cores)),
      learning_(std::make_shared<speculators::AgentLearning>()),
      worker_([this] { Run(); }) {}

Speculation::~Speculation() { Stop(); }

void Speculation::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    order_.clear();
    pending_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Result<std::unique_ptr<Proposer>> Speculation::MakeProposer(const api::SpeculationConfig& config) const {
  return Proposer::Create(config, learning_);
}

Status Speculation::Enable(const std::string& session, const api::SpeculationConfig& config) {
  SPECULA_ASSIGN_OR_RETURN(auto proposer, MakeProposer(config));
  Enable(session, std::move(proposer));
  return Status::Ok();
}

void Speculation::Enable(const std::string& session, std::unique_ptr<Proposer> proposer) {
  auto e = std::make_shared<Entry>();
  e->proposer = std::move(proposer);
  std::lock_guard lock(mu_);
  sessions_[session] = std::move(e);
}

void Speculation::Remove(const std::string& session) {
  std::lock_guard lock(mu_);
  sessions_.erase(session);
  pending_.erase(session);
}

std::shared_ptr<Speculation::Entry> Speculation::Find(const std::string& session) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(session);
  return it == sessions_.end() ? nullptr : it->second;
}

void Speculation::Queue(const std::string& session, const std::string& head) {
  {
    std::lock_guard lock(mu_);
    if (stop_ || !sessions_.contains(session)) return;
    if (pending_.insert_or_assign(session, head).second) order_.push_back(session);
  }
  cv_.notify_all();
}

void Speculation::AfterCreate(const std::string& session, const std::string& head) { Queue(session, head); }

void Speculation::AfterCommit(const std::string& session, const std::string& head, speculators::Step step,
                              bool hit, bool speculated, double duration_ms, double saved_ms) {
  auto e = Find(session);
  if (!e) return;
  {
    std::lock_guard lock(e->mu);
    e->proposer->Observe(std::move(step), head, hit, speculated, duration_ms, saved_ms);
  }
  Queue(session, head);
}

void Speculation::AfterRollback(const std::string& session, const std::string& head) {
  auto e = Find(session);
  if (!e) return;
  {
    std::lock_guard lock(e->mu);
    e->proposer->Rollback(head);
  }
  Queue(session, head);
}

std::optional<api::SpeculationStatus> Speculation::Report(const std::string& session) {
  auto e = Find(session);
  if (!e) return std::nullopt;
  std::lock_guard lock(e->mu);
  return e->proposer->Report();
}

void Speculation::Drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return stop_ || (order_.empty() && !busy_); });
}

void Speculation::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !order_.empty(); });
    if (stop_) return;
    std::string session = order_.front();
    order_.pop_front();
    auto it = pending_.find(session);
    if (it == pending_.end()) continue;  // removed meanwhile
    std::string head = it->second;
    pending_.erase(it);
    busy_ = true;
    lock.unlock();
    Round(session, head);
    // After every exit of the round (stale, failed, launched): what a
    // client waits for to know that the head's branches are all there.
    if (auto e = Find(session)) {
      std::lock_guard entry_lock(e->mu);
      e->proposer->FinishRound(head);
    }
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void Speculation::Round(const std::string& session, const std::string& head) {
  auto e = Find(session);
  if (!e) return;
  // Only this thread asks the speculator, so it runs unlocked: a commit's
  // Observe never waits for a model's answer.
  speculators::History history;
  {
    std::lock_guard lock(e->mu);
    history = e->proposer->history();
  }
  auto proposed = e->proposer->Propose(history);
  double idle = idle_cores_();
  Result<std::vector<Launch>> launches = [&] {
    std::lock_guard lock(e->mu);
    return e->proposer->Choose(std::move(proposed), idle);
  }();
  if (!launches.ok()) {
    spdlog::warn("session {}: speculation: {}", session, launches.error().ToString());
    return;
  }
  for (const auto& l : *launches) {
    auto started = std::chrono::steady_clock::now();
    auto branch = launch_(session, head, l);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    std::lock_guard lock(e->mu);
    if (!branch.ok()) {
      if (branch.error().code() == Code::kAborted) return;  // the head moved on: the round is stale
      spdlog::warn("session {}: speculation: launch of \"{}\": {}", session, l.command, branch.error().ToString());
      e->proposer->NoteError(branch.error());
      return;
    }
    e->proposer->ObserveLaunch(ms);
  }
}

}  // namespace specula::speculation
