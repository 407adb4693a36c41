#include "runtime/speculation/proposer.h"

#include <algorithm>

#include "speculators/builtin.h"
#include "speculators/openai_client.h"

namespace specula::speculation {
namespace {

// A speculator that never proposes ("none": the config is kept and shown,
// nothing launches).
class NoSpeculator final : public speculators::Speculator {
 public:
  Result<std::vector<speculators::Candidate>> Propose(const speculators::History&, int) override {
    return std::vector<speculators::Candidate>{};
  }
  std::string Name() const override { return "none"; }
};

// The speculators read at most a few KiB of each output: keep the history small.
constexpr size_t kMaxOutput = 8 * 1024;

void Cap(std::string& s) {
  if (s.size() > kMaxOutput) s.resize(kMaxOutput);
}

}  // namespace

double MarginalBranchCostMs(double idle_cores, double launch_ms, double run_ms, double speculative_share) {
  double missing = std::clamp(1.0 - idle_cores, 0.0, 1.0);
  return std::max(0.0, launch_ms) + std::max(0.0, run_ms) * std::clamp(speculative_share, 0.0, 1.0) * missing;
}

Result<std::unique_ptr<Proposer>> Proposer::Create(const api::SpeculationConfig& config,
                                                  std::shared_ptr<speculators::AgentLearning> learning) {
  std::unique_ptr<speculators::Speculator> s;
  if (config.speculator == "builtin") {
    SPECULA_ASSIGN_OR_RETURN(auto model, speculators::Model::Shipped());
    s = std::make_unique<speculators::BuiltinSpeculator>(std::move(model), speculators::BuiltinOptions{}, nullptr,
                                                        std::move(learning));
  } else if (config.speculator == "openai") {
    speculators::OpenAIConfig oc;
    oc.base_url = config.endpoint;
    oc.model = config.model;
    // A proposal that arrives after the agent's next commit is useless.
    oc.timeout = std::chrono::seconds(20);
    s = std::make_unique<speculators::OpenAISpeculator>(speculators::OpenAIConfigFromEnvironment(oc));
  } else if (config.speculator == "none") {
    s = std::make_unique<NoSpeculator>();
  } else {
    return Error(Code::kInvalidArgument, "unknown speculator \"" + config.speculator + "\"");
  }
  return std::make_unique<Proposer>(config, std::move(s));
}

Proposer::Proposer(api::SpeculationConfig config, std::unique_ptr<speculators::Speculator> speculator)
    // Priors: one second saved by a hit and a 5 ms launch until measured,
    // each worth one observation so that the session's own figures win fast.
    : config_(std::move(config)), speculator_(std::move(speculator)),
      costs_(speculators::CostModel::Priors{.saving_ms = 1000, .branch_cost_ms = 5, .prior_weight = 1}) {
  status_.config = config_;
  // The client's agent name: the shipped model's table when it knows it,
  // else what this daemon learned of it (speculators::AgentLearning), else
  // the pooled tables.
  history_.agent = config_.agent;
}

void Proposer::Observe(speculators::Step step, const std::string& head, bool hit, bool speculated,
                       double duration_ms, double saved_ms) {
  Cap(step.stdout_text);
  Cap(step.stderr_text);
  history_.steps.push_back(std::move(step));
  heads_.push_back(head);
  if (history_.steps.size() > kMaxHistorySteps) {
    history_.steps.erase(history_.steps.begin());
    heads_.erase(heads_.begin());
    ++history_.first;
  }
  // What a hit saves the agent is the command's run time; a hit's own
  // duration counts too (it is the run the agent did not wait for).
  double run = hit ? std::max(saved_ms, duration_ms) : duration_ms;
  costs_.ObserveHit(run);
  run_sum_ms_ += run;
  runs_ += 1;
  if (hit && speculated) ++status_.hits;
}

void Proposer::Rollback(const std::string& checkpoint) {
  auto it = std::find(heads_.begin(), heads_.end(), checkpoint);
  size_t keep = it == heads_.end() ? 0 : static_cast<size_t>(it - heads_.begin()) + 1;
  history_.steps.resize(std::min(keep, history_.steps.size()));
  heads_.resize(keep);
  // Back to the session's root, or past the kept window: what led there is
  // gone, so the session's history starts again from there.
  if (keep == 0) history_.first = 0;
}

void Proposer::ObserveLaunch(double launch_ms) {
  costs_.ObserveBranch(launch_ms);
  ++status_.launched;
}

void Proposer::NoteError(const Error& e) { status_.last_error = e.ToString(); }

Result<std::vector<Launch>> Proposer::Next(double idle_cores) { return Choose(Propose(history_), idle_cores); }

Result<std::vector<speculators::Candidate>> Proposer::Propose(const speculators::History& history) {
  return speculator_->Propose(history, static_cast<int>(config_.k));
}

Result<std::vector<Launch>> Proposer::Choose(Result<std::vector<speculators::Candidate>> proposed,
                                             double idle_cores) {
  ++status_.proposals;
  if (!proposed.ok()) {
    NoteError(proposed.error());
    return std::move(proposed).error().Context("speculator " + speculator_->Name());
  }
  std::vector<speculators::Candidate> cands = speculators::NormalizeCandidates(std::move(*proposed), config_.k);
  std::erase_if(cands, [this](const auto& c) { return c.confidence < config_.min_p; });
  double run_ms = runs_ > 0 ? run_sum_ms_ / runs_ : 0;
  status_.saving_ms = costs_.saving_ms();
  status_.cost_ms = MarginalBranchCostMs(idle_cores, costs_.branch_cost_ms(), run_ms, kSpeculativeShare);
  size_t m = cands.size();
  if (config_.launch == "rule") {
    std::vector<double> p;
    for (const auto& c : cands) p.push_back(c.confidence);
    m = speculators::ChooseLaunchCount(p, config_.k, status_.saving_ms, status_.cost_ms);
  }
  std::vector<Launch> out;
  for (size_t i = 0; i < m && i < cands.size(); ++i) {
    out.push_back(Launch{cands[i].command,
                         api::BranchOrigin{"speculator:" + speculator_->Name(), cands[i].confidence, cands[i].source}});
  }
  return out;
}

api::SpeculationStatus Proposer::Report() const { return status_; }

}  // namespace specula::speculation
