// The daemon's transparent speculation: one Proposer per session with
// speculation on, and one worker thread that runs their proposal rounds off
// the commit path. After a commit (session create, rollback) the service
// calls After*; that only queues a round and returns, so a commit's reply
// never waits for a speculator. A round proposes, applies the launch rule
// and launches through the service's LaunchFn (the core's Speculate, the
// same path action.speculate takes). Speculation errors (a model endpoint
// down, the policy's branch limit) are logged and kept for session.show;
// they never fail a commit.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtime/speculation/proposer.h"

namespace specula::speculation {

// Launches one branch of `session` running launch.command, if the session's
// head is still `head` (a later commit made the round stale); the branch id.
using LaunchFn =
    std::function<Result<std::string>(const std::string& session, const std::string& head, const Launch& launch)>;

// The cores nobody uses now: online CPUs minus the 1-minute load average, >= 0.
double IdleCores();

class Speculation {
 public:
  explicit Speculation(LaunchFn launch, std::function<double()> idle_cores = IdleCores);
  ~Speculation();  // stops the worker; queued rounds are dropped
  Speculation(const Speculation&) = delete;
  Speculation& operator=(const Speculation&) = delete;

  // Speculation on for `session` (config.speculator "none" is kept, and
  // launches nothing). Fails only for a speculator that cannot be built.
  Status Enable(const std::string& session, const api::SpeculationConfig& config);
  // A proposer for `config` that learns across this daemon's sessions (the
  // shared speculators::AgentLearning); Enable(session, config) uses it.
  Result<std::unique_ptr<Proposer>> MakeProposer(const api::SpeculationConfig& config) const;
  void Enable(const std::string& session, std::unique_ptr<Proposer> proposer);
  void Remove(const std::string& session);

  // Queue a round for `head` (no-op for a session without speculation).
  void AfterCreate(const std::string& session, const std::string& head);
  // `speculated`: the commit promoted a branch this speculation launched.
  void AfterCommit(const std::string& session, const std::string& head, speculators::Step step, bool hit,
                   bool speculated, double duration_ms, double saved_ms);
  void AfterRollback(const std::string& session, const std::string& head);

  std::optional<api::SpeculationStatus> Report(const std::string& session);
  // Blocks until no round is queued or running (tests; shutdown).
  void Drain();
  void Stop();

 private:
  struct Entry {
    std::mutex mu;  // guards proposer
    std::unique_ptr<Proposer> proposer;
  };
  std::shared_ptr<Entry> Find(const std::string& session);
  void Queue(const std::string& session, const std::string& head);
  void Run();
  void Round(const std::string& session, const std::string& head);

  LaunchFn launch_;
  std::function<double()> idle_cores_;
  // What the built-in speculator learned of agents from finished sessions.
  std::shared_ptr<speculators::AgentLearning> learning_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Entry>> sessions_;
  // Pending rounds, one per session: a newer head replaces an older one.
  std::deque<std::string> order_;
  std::map<std::string, std::string> pending_;  // session -> head
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;  // last: started once the rest exists
};

}  // namespace specula::speculation
