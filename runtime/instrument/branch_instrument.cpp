#include "runtime/instrument/branch_instrument.h"

#include <linux/random.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

namespace specula::instrument {

namespace {

void AddFlag(std::vector<std::string>& flags, const char* flag) {
  if (std::find(flags.begin(), flags.end(), flag) == flags.end()) flags.emplace_back(flag);
}

}  // namespace

bool ReadNondeterministicInputAfterStartup(std::span<const ebpf::EffectEvent> events,
                                           std::set<pid_t>& fresh) {
  // fresh: tgids exec'd whose startup getrandom is still due (across batches).
  std::vector<ebpf::EffectEvent> inputs;  // only the kinds the analysis looks at: small
  for (const ebpf::EffectEvent& e : events) {
    switch (e.op) {
      case ebpf::EffectOp::kExec:
        if (e.ok()) fresh.insert(e.tgid);
        break;
      case ebpf::EffectOp::kGetrandom:
        // glibc >= 2.34 seeds malloc's tcache key at startup of every program
        // with getrandom(8 bytes, GRND_NONBLOCK): not input the program uses.
        if (e.pid == e.tgid && fresh.erase(e.tgid) == 1 && e.result == 8 && e.flags == GRND_NONBLOCK) break;
        inputs.push_back(e);
        break;
      case ebpf::EffectOp::kOpenRandom:
      case ebpf::EffectOp::kRecv:
      case ebpf::EffectOp::kConnect:
      case ebpf::EffectOp::kSend:
        inputs.push_back(e);
        break;
      default:
        break;
    }
  }
  return ebpf::ReadNondeterministicInput(inputs);
}

bool BranchReport::HasFlag(std::string_view flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

nlohmann::json EffectToJson(const ebpf::EffectEvent& e) {
  nlohmann::json j = {{"op", std::string(ebpf::ToString(e.op))},
                      {"path", e.path},
                      {"path2", e.path2},
                      {"pid", e.pid},
                      {"tgid", e.tgid},
                      {"result", e.result},
                      {"time_ns", e.time_ns},
                      {"comm", e.comm}};
  if (e.addr.family != 0) j["addr"] = e.addr.ToString();
  if (e.path_truncated) j["path_truncated"] = true;
  return j;
}

nlohmann::json ToJson(const BranchReport& report) {
  nlohmann::json effects = nlohmann::json::array();
  for (const auto& e : report.effects) effects.push_back(EffectToJson(e));
  nlohmann::json lossy = nlohmann::json::array();
  for (const auto& r : report.lossy_effects) lossy.push_back(r.ToJson());
  return {{"effects", std::move(effects)},
          {"effects_total", report.effects_total},
          {"lossy_effects", std::move(lossy)},
          {"flags", report.flags},
          {"denied_egress", report.denied_egress},
          {"traced", report.traced},
          {"checkpoint",
           {{"criu_dump", report.checkpoint.criu_dump},
            {"reason", report.checkpoint.reason},
            {"running", report.checkpoint.running}}}};
}

std::vector<lossy::LossyRecord> EscapedLossyEffects(const BranchReport& report) {
  std::vector<lossy::LossyRecord> out;
  for (const auto& r : report.lossy_effects) {
    using K = lossy::LossyRecord::Kind;
    if (r.kind == K::kWrite || r.kind == K::kCreate || r.kind == K::kDelete) out.push_back(r);
  }
  return out;
}

// ---------------------------------------------------------------- BranchProbe

BranchProbe::BranchProbe(std::shared_ptr<ebpf::EffectTracer> tracer, std::shared_ptr<ebpf::EgressPrograms> egress,
                         Status egress_status, const policy::Policy& policy, lossy::LossyJournal lossy,
                         size_t max_report_effects)
    : tracer_(std::move(tracer)),
      egress_(std::move(egress)),
      egress_status_(std::move(egress_status)),
      network_(policy.network),
      lossy_(std::move(lossy)),
      max_report_effects_(max_report_effects),
      journal_(std::make_unique<ebpf::EffectJournal>()) {}

BranchProbe::~BranchProbe() { Detach(); }

Status BranchProbe::Attach(const sandbox::Sandbox& sandbox) {
  if (attached_ || closed_) return Error(Code::kFailedPrecondition, "branch probe: already attached");
  cgroup_id_ = sandbox.cgroup2_id();
  if (tracer_ && cgroup_id_ != 0) {
    Status added = tracer_->AddCgroup(cgroup_id_, journal_->Sink());
    if (!added.ok()) return std::move(added).error().Context("branch probe: trace cgroup");
    registered_ = true;
  }
  // The guard is defence in depth (the branch's netns has no route out), so
  // a kernel that refuses cgroup sock_addr programs, or a sandbox without a
  // cgroup2 directory, degrades to a flag.
  if (sandbox.cgroup2_path().empty()) {
    spdlog::warn("branch probe: sandbox has no cgroup2 directory: no egress guard");
    attached_ = true;
    return Status::Ok();
  }
  // Shared programs: this only writes the branch's policy into their maps
  // and links them to its cgroup. Without them, their load error stands in.
  Result<ebpf::EgressGuard> guard = egress_ ? ebpf::EgressGuard::Attach(egress_, sandbox.cgroup2_path(), network_)
                                            : Result<ebpf::EgressGuard>(egress_status_.error());
  if (guard.ok()) {
    guard_.emplace(std::move(guard).value());
  } else if (guard.error().code() == Code::kUnavailable) {
    spdlog::warn("branch probe: egress guard unavailable: {}", guard.error().ToString());
  } else {
    Error err = std::move(guard).error();
    Detach();
    return std::move(err).Context("branch probe: egress guard on " + sandbox.cgroup2_path());
  }
  attached_ = true;
  return Status::Ok();
}

Result<BranchReport> BranchProbe::Finish(const FinishOptions& options) {
  if (!attached_) return Error(Code::kFailedPrecondition, "branch probe: finish before attach");
  if (closed_) return Error(Code::kFailedPrecondition, "branch probe: finish after keep or discard");
  BranchReport report;
  // Lossy changes first: if they cannot be collected, the traced events stay
  // in the journal for the next call instead of being lost with the error.
  SPECULA_ASSIGN_OR_RETURN(report.lossy_effects, lossy_.CollectEffects().Context("branch probe: lossy effects"));
  report.traced = registered_;
  bool complete = false;
  std::vector<ebpf::EffectEvent> events;
  if (registered_) {
    // Drain is what makes delivery synchronous: the action's processes have
    // been waited for, so all their events are in the ring buffer now.
    Result<int> drained = tracer_->Drain();
    if (!drained.ok()) spdlog::warn("branch probe: drain: {}", drained.error().ToString());
    events = journal_->Take();
    complete = drained.ok() && tracer_->Complete(cgroup_id_);
    if (!complete) AddFlag(report.flags, kFlagTraceIncomplete);
  } else {
    AddFlag(report.flags, kFlagUntraced);
  }
  report.checkpoint = ebpf::DecideCheckpoint({events, complete, options.processes_before, options.carried});
  if (ReadNondeterministicInputAfterStartup(events, startup_pending_)) {
    AddFlag(report.flags, kFlagNondeterministic);
  }

  if (guard_) {
    Result<ebpf::EgressCounts> counts = guard_->Counts();
    if (counts.ok()) {
      report.denied_egress = counts->denied - std::min(counts->denied, denied_reported_);
      denied_reported_ = counts->denied;
      if (report.denied_egress > 0) AddFlag(report.flags, kFlagEgressDenied);
      if (counts->lossy > lossy_egress_reported_) AddFlag(report.flags, kFlagLossyEgress);
      lossy_egress_reported_ = counts->lossy;
    } else {
      spdlog::warn("branch probe: egress counters: {}", counts.error().ToString());
    }
  } else {
    AddFlag(report.flags, kFlagEgressUnguarded);
  }

  report.effects_total = events.size();
  if (events.size() > max_report_effects_) {
    events.resize(max_report_effects_);
    AddFlag(report.flags, kFlagEffectsTruncated);
  }
  report.effects = std::move(events);
  return report;
}

void BranchProbe::Detach() {
  if (registered_) {
    Status removed = tracer_->RemoveCgroup(cgroup_id_);
    if (!removed.ok()) spdlog::warn("branch probe: untrace cgroup {}: {}", cgroup_id_, removed.ToString());
    registered_ = false;
  }
  if (guard_) guard_->Detach();  // counters stay readable for a late report
}

Status BranchProbe::Discard(const lossy::LossyJournal::CommittedState* committed) {
  Detach();
  closed_ = true;
  discarded_ = true;
  Result<std::vector<lossy::LossyRecord>> restored = lossy_.Restore(committed);
  if (!restored.ok()) return std::move(restored).error().Context("branch probe: discard");
  return Status::Ok();
}

Status BranchProbe::Keep() {
  if (discarded_) return Error(Code::kFailedPrecondition, "branch probe: keep after discard");
  Detach();
  closed_ = true;
  return Status::Ok();
}

// ------------------------------------------------------------ Instrumentation

Instrumentation::Instrumentation(InstrumentationOptions options) : options_(std::move(options)) {}

Instrumentation::~Instrumentation() = default;

std::shared_ptr<ebpf::EffectTracer> Instrumentation::Tracer() {
  std::lock_guard<std::mutex> lock(mu_);
  if (load_attempted_) return tracer_;
  // One attempt per Instrumentation: a refused load is not retried per
  // branch (each attempt costs the probe and load time again).
  load_attempted_ = true;
  if (!options_.tracing) {
    load_status_ = Error(Code::kUnavailable, "effect tracing disabled by configuration");
    return nullptr;
  }
  Result<std::unique_ptr<ebpf::EffectTracer>> loaded = ebpf::EffectTracer::Load(options_.tracer);
  if (!loaded.ok()) {
    load_status_ = std::move(loaded).error().Context("load effect tracer");
    spdlog::warn("effect tracing off: {}", load_status_.ToString());
    return nullptr;
  }
  std::shared_ptr<ebpf::EffectTracer> tracer(std::move(*loaded).release());
  Status started = tracer->Start();
  if (!started.ok()) {
    load_status_ = std::move(started).error().Context("start effect tracer");
    spdlog::warn("effect tracing off: {}", load_status_.ToString());
    return nullptr;
  }
  for (const auto& missing : tracer->unavailable_programs()) spdlog::info("effect tracer: off: {}", missing);
  tracer_ = std::move(tracer);
  return tracer_;
}

std::pair<std::shared_ptr<ebpf::EgressPrograms>, Status> Instrumentation::Egress() {
  std::lock_guard<std::mutex> lock(egress_mu_);
  if (egress_) return {egress_, Status::Ok()};
  if (!egress_unavailable_.ok()) return {nullptr, egress_unavailable_};
  // Loaded under the lock: concurrent first branches wait for one load
  // instead of each loading (and verifying) its own copy.
  Result<std::shared_ptr<ebpf::EgressPrograms>> loaded = ebpf::EgressPrograms::Load();
  if (loaded.ok()) {
    egress_ = std::move(loaded).value();
    return {egress_, Status::Ok()};
  }
  Status why = std::move(loaded).error().Context("load egress guard");
  // The kernel refusing the program type will not change: do not re-probe
  // per branch. Anything else (e.g. a transient ENOMEM) is retried.
  if (why.error().code() == Code::kUnavailable) egress_unavailable_ = why;
  return {nullptr, std::move(why)};
}

Status Instrumentation::TracingStatus() {
  (void)Tracer();
  std::lock_guard<std::mutex> lock(mu_);
  return load_status_;
}

Result<std::unique_ptr<BranchProbe>> Instrumentation::Prepare(const policy::Policy& policy,
                                                              const std::string& branch_state_dir) {
  SPECULA_ASSIGN_OR_RETURN(lossy::LossyJournal journal,
                           lossy::LossyJournal::Prepare(policy, branch_state_dir, options_.lossy)
                               .Context("instrument branch"));
  std::shared_ptr<ebpf::EffectTracer> tracer = Tracer();
  // A failed load is not Prepare's error: Attach reports it as before
  // (kUnavailable degrades to "egress_unguarded", the rest fails Attach).
  auto [egress, egress_status] = Egress();
  return std::unique_ptr<BranchProbe>(new BranchProbe(std::move(tracer), std::move(egress), std::move(egress_status),
                                                      policy, std::move(journal), options_.max_report_effects));
}

}  // namespace specula::instrument
