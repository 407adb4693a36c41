// Integration: Instrumentation + BranchProbe on a real Sandbox with the real
// effect tracer (loaded once for the whole binary: loading takes ~0.3 s and
// unloading ~2.5 s), the real egress guard and lossy files on the host.
#include "runtime/instrument/branch_instrument.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "tests/sandbox/sandbox_test_util.h"

namespace specula::instrument {
namespace {

using namespace std::chrono_literals;
using sandbox::testing::MakeSpec;
using sandbox::testing::ReadText;
using sandbox::testing::ScratchDirs;
using sandbox::testing::UniqueName;
using Kind = lossy::LossyRecord::Kind;

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Kills every `sleep` in the sandbox (no pkill in a minimal base).
constexpr const char* kKillSleeps =
    "kill $(for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = sleep ] && basename $p; done)";

class InstrumentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Cheap: the tracer itself loads on the first RequireTracing(), so a
    // test run alone (ctest runs each in its own process) that needs no
    // tracer does not pay its load and unload.
    instr_ = new Instrumentation();
  }
  static void TearDownTestSuite() {
    delete instr_;  // unloads the tracer
    instr_ = nullptr;
  }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    name_ = UniqueName("instr");
    dirs_ = std::make_unique<ScratchDirs>(name_);
    std::filesystem::create_directories(Host(""));
    std::filesystem::create_directories(State());
    WriteText(Host("restore.txt"), "old-restore\n");
    WriteText(Host("none.txt"), "old-none\n");
    policy_ = policy::DefaultPolicy();
    policy_.paths.push_back({Host("restore.txt"), policy::PathMode::kLossy, "cache", policy::Compensation::kRestore, ""});
    policy_.paths.push_back({Host("none.txt"), policy::PathMode::kLossy, "tuning", policy::Compensation::kNone, ""});
  }
  void TearDown() override {
    if (sb_) {
      EXPECT_TRUE(sb_->Destroy().ok());
    }
    sb_.reset();
    probe_.reset();
    dirs_.reset();
  }

  std::string Host(const std::string& rel) const { return dirs_->root() + "/host" + (rel.empty() ? "" : "/" + rel); }
  std::string State() const { return dirs_->root() + "/state"; }

  // Prepare -> binds into the spec -> Sandbox::Create -> Attach, as the core does.
  void StartBranch(Instrumentation& instr) {
    auto probe = instr.Prepare(policy_, State());
    ASSERT_TRUE(probe.ok()) << probe.error().ToString();
    probe_ = std::move(*probe);
    ASSERT_EQ(probe_->binds().size(), 2u);
    sandbox::SandboxSpec spec = MakeSpec(name_, *dirs_);
    spec.policy = policy_;
    spec.binds = probe_->binds();
    auto sb = sandbox::Sandbox::Create(spec);
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sb_ = std::move(*sb);
    Status attached = probe_->Attach(*sb_);
    ASSERT_TRUE(attached.ok()) << attached.ToString();
  }
  sandbox::ActionResult Run(const std::string& cmd) {
    auto r = sb_->Run(cmd, 20s);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : sandbox::ActionResult{};
  }
  BranchReport Finish(const FinishOptions& options = {}) {
    auto r = probe_->Finish(options);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : BranchReport{};
  }
  void RequireTracing() {
    Status tracing = instr_->TracingStatus();
    if (tracing.ok()) return;
    // Only a kernel that refuses the programs is a reason to skip.
    if (tracing.error().code() == Code::kUnavailable) GTEST_SKIP() << "no effect tracing: " << tracing.ToString();
    FAIL() << tracing.ToString();
  }

  static inline Instrumentation* instr_ = nullptr;
  std::string name_;
  std::unique_ptr<ScratchDirs> dirs_;
  policy::Policy policy_;
  std::unique_ptr<BranchProbe> probe_;
  std::unique_ptr<sandbox::Sandbox> sb_;
};

bool HasEffect(const BranchReport& r, ebpf::EffectOp op, const std::string& needle) {
  return std::any_of(r.effects.begin(), r.effects.end(), [&](const ebpf::EffectEvent& e) {
    return e.op == op && e.ok() && e.path.find(needle) != std::string::npos;
  });
}

const lossy::LossyRecord* FindLossy(const BranchReport& r, const std::string& tag) {
  for (const auto& rec : r.lossy_effects) {
    if (rec.tag == tag) return &rec;
  }
  return nullptr;
}

ebpf::EffectEvent Ev(ebpf::EffectOp op, pid_t tgid, int64_t result = 0, uint64_t flags = 0) {
  ebpf::EffectEvent e;
  e.op = op;
  e.pid = e.tgid = tgid;
  e.result = result;
  e.flags = flags;
  return e;
}

TEST(NondeterministicInput, GlibcStartupGetrandomIsNotInput) {
  using ebpf::EffectOp;
  constexpr uint64_t kNonblock = 1;  // GRND_NONBLOCK
  std::vector<ebpf::EffectEvent> startup = {Ev(EffectOp::kExec, 10), Ev(EffectOp::kGetrandom, 10, 8, kNonblock)};
  EXPECT_FALSE(ReadNondeterministicInputAfterStartup(startup));
  EXPECT_TRUE(ebpf::ReadNondeterministicInput(startup));  // what the raw analysis says
  // A second read by the same program is its own.
  auto twice = startup;
  twice.push_back(Ev(EffectOp::kGetrandom, 10, 8, kNonblock));
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup(twice));
  // Without an exec in the window, or with another size or flags: input.
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup({{Ev(EffectOp::kGetrandom, 10, 8, kNonblock)}}));
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup(
      {{Ev(EffectOp::kExec, 11), Ev(EffectOp::kGetrandom, 11, 16, kNonblock)}}));
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup({{Ev(EffectOp::kExec, 12), Ev(EffectOp::kGetrandom, 12, 8, 0)}}));
  // Other kinds of input are unaffected.
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup({{Ev(EffectOp::kExec, 13), Ev(EffectOp::kOpenRandom, 13, 3)}}));
}

TEST(NondeterministicInput, StartupCallInALaterBatchIsStillStartup) {
  // A background job's exec is delivered with one action's events and its
  // startup getrandom with the next one's: the probe carries the pending set.
  using ebpf::EffectOp;
  constexpr uint64_t kNonblock = 1;
  std::set<pid_t> pending;
  std::vector<ebpf::EffectEvent> first = {Ev(EffectOp::kExec, 20)};
  std::vector<ebpf::EffectEvent> second = {Ev(EffectOp::kGetrandom, 20, 8, kNonblock)};
  EXPECT_FALSE(ReadNondeterministicInputAfterStartup(first, pending));
  EXPECT_FALSE(ReadNondeterministicInputAfterStartup(second, pending));
  // Its next call is the program's own.
  EXPECT_TRUE(ReadNondeterministicInputAfterStartup(second, pending));
}

TEST_F(InstrumentTest, ReportCoversEffectsLossyWritesFlagsEgressAndCheckpoint) {
  RequireTracing();
  if (IsSkipped() || HasFatalFailure()) return;
  StartBranch(*instr_);
  ASSERT_NE(sb_, nullptr);
  ASSERT_TRUE(probe_->traced());
  auto r = Run("echo new-restore > " + Host("restore.txt") + "; echo new-none > " + Host("none.txt") +
               "; echo hi > /tmp/created; /bin/true; head -c 16 /dev/urandom > /dev/null"
               "; (exec 3<>/dev/tcp/10.255.255.1/9) 2>/dev/null"
               "; sleep 100 > /dev/null 2>&1 & echo started");
  EXPECT_EQ(r.stdout_data, "started\n") << r.stderr_data;
  // The writes went through the binds to the host, before any discard.
  EXPECT_EQ(ReadText(Host("restore.txt")), "new-restore\n");
  EXPECT_EQ(ReadText(Host("none.txt")), "new-none\n");

  BranchReport rep = Finish();
  EXPECT_TRUE(rep.traced);
  EXPECT_TRUE(HasEffect(rep, ebpf::EffectOp::kOpen, "/tmp/created"));
  EXPECT_TRUE(HasEffect(rep, ebpf::EffectOp::kExec, "true"));
  EXPECT_EQ(rep.effects_total, rep.effects.size());

  ASSERT_EQ(rep.lossy_effects.size(), 2u);
  const lossy::LossyRecord* restore = FindLossy(rep, "cache");
  const lossy::LossyRecord* none = FindLossy(rep, "tuning");
  ASSERT_NE(restore, nullptr);
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(restore->kind, Kind::kWrite);
  EXPECT_EQ(restore->path, Host("restore.txt"));
  EXPECT_EQ(restore->compensation, policy::Compensation::kRestore);
  EXPECT_EQ(none->kind, Kind::kWrite);
  EXPECT_EQ(none->compensation, policy::Compensation::kNone);

  EXPECT_TRUE(rep.HasFlag(kFlagNondeterministic));
  EXPECT_FALSE(rep.HasFlag(kFlagTraceIncomplete));
  EXPECT_FALSE(rep.HasFlag(kFlagUntraced));
  EXPECT_GE(rep.denied_egress, 1u);
  EXPECT_TRUE(rep.HasFlag(kFlagEgressDenied));
  EXPECT_TRUE(rep.checkpoint.criu_dump) << rep.checkpoint.reason;
  ASSERT_FALSE(rep.checkpoint.running.empty());
  // The background job's fork is in this report (its exec may land in the
  // next one: bash does not wait for it).
  pid_t bg = rep.checkpoint.running.front();
  EXPECT_TRUE(std::any_of(rep.effects.begin(), rep.effects.end(), [&](const ebpf::EffectEvent& e) {
    return e.op == ebpf::EffectOp::kFork && e.child_tgid() == bg;
  }));

  // The JSON the daemon shows, and the lossy effects a commit reports.
  nlohmann::json j = ToJson(rep);
  EXPECT_EQ(j["lossy_effects"].size(), 2u);
  EXPECT_EQ(j["checkpoint"]["criu_dump"], true);
  EXPECT_NE(std::find(j["flags"].begin(), j["flags"].end(), "nondeterministic"), j["flags"].end());
  EXPECT_GE(j["denied_egress"].get<uint64_t>(), 1u);
  ASSERT_FALSE(j["effects"].empty());
  for (const char* key : {"op", "path", "path2", "pid", "result", "time_ns"}) {
    EXPECT_TRUE(j["effects"][0].contains(key)) << key;
  }
  std::vector<lossy::LossyRecord> escaped = EscapedLossyEffects(rep);
  auto escaped_has = [&](const std::string& tag, const std::string& path) {
    return std::any_of(escaped.begin(), escaped.end(),
                       [&](const lossy::LossyRecord& e) { return e.tag == tag && e.path == path; });
  };
  EXPECT_TRUE(escaped_has("cache", Host("restore.txt")));
  EXPECT_TRUE(escaped_has("tuning", Host("none.txt")));

  // Next action ends the sleep: carrying the running set, no dump is needed.
  r = Run(kKillSleeps);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  for (int i = 0; i < 100; ++i) {
    auto live = sb_->HasLiveProcesses();
    if (!live.ok() || !*live) break;
    std::this_thread::sleep_for(20ms);
  }
  BranchReport next = Finish({.processes_before = false, .carried = rep.checkpoint.running});
  EXPECT_FALSE(next.checkpoint.criu_dump) << next.checkpoint.reason;
  EXPECT_TRUE(next.lossy_effects.empty());  // reported once only
  EXPECT_EQ(next.denied_egress, 0u);        // per action, not cumulative
  EXPECT_FALSE(next.HasFlag(kFlagNondeterministic));

  // Discard (after the sandbox is gone): restore-mode file back, none-mode kept.
  const std::string cgroup = sb_->cgroup2_path();
  ASSERT_TRUE(sb_->Destroy().ok());
  sb_.reset();
  Status discarded = probe_->Discard();
  EXPECT_TRUE(discarded.ok()) << discarded.ToString();
  EXPECT_FALSE(probe_->traced());  // unregistered from the shared tracer
  EXPECT_FALSE(std::filesystem::exists(cgroup)) << cgroup;
  EXPECT_EQ(ReadText(Host("restore.txt")), "old-restore\n");
  EXPECT_EQ(ReadText(Host("none.txt")), "new-none\n");
  EXPECT_TRUE(probe_->Discard().ok());  // idempotent
  EXPECT_EQ(probe_->Keep().error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(probe_->Finish().status().error().code(), Code::kFailedPrecondition);
}

TEST_F(InstrumentTest, QuietActionNeedsNoDumpAndKeepLeavesLossyWrites) {
  RequireTracing();
  if (IsSkipped() || HasFatalFailure()) return;
  StartBranch(*instr_);
  ASSERT_NE(sb_, nullptr);
  auto r = Run("echo kept > " + Host("restore.txt") + "; mkdir /tmp/d; echo x > /tmp/d/f; cat /etc/hostname");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  BranchReport rep = Finish();
  EXPECT_FALSE(rep.checkpoint.criu_dump) << rep.checkpoint.reason;
  EXPECT_TRUE(rep.checkpoint.running.empty());
  EXPECT_FALSE(rep.HasFlag(kFlagNondeterministic));
  EXPECT_FALSE(rep.HasFlag(kFlagEgressDenied));
  EXPECT_EQ(rep.denied_egress, 0u);
  EXPECT_TRUE(HasEffect(rep, ebpf::EffectOp::kMkdir, "/tmp/d"));
  ASSERT_EQ(rep.lossy_effects.size(), 1u);
  EXPECT_EQ(rep.lossy_effects[0].tag, "cache");

  // Promote: the lossy write stays, and destroying the probe restores nothing.
  ASSERT_TRUE(probe_->Keep().ok());
  EXPECT_FALSE(probe_->traced());
  ASSERT_TRUE(sb_->Destroy().ok());
  sb_.reset();
  probe_.reset();
  EXPECT_EQ(ReadText(Host("restore.txt")), "kept\n");
}

TEST_F(InstrumentTest, DestroyedProbeRestoresNothingButLeavesPreImagesForLoad) {
  RequireTracing();
  if (IsSkipped() || HasFatalFailure()) return;
  StartBranch(*instr_);
  ASSERT_NE(sb_, nullptr);
  auto r = Run("echo lost > " + Host("restore.txt"));
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  ASSERT_TRUE(sb_->Destroy().ok());
  sb_.reset();
  probe_.reset();  // e.g. the daemon went down mid-branch
  EXPECT_EQ(ReadText(Host("restore.txt")), "lost\n");
  // A restarted daemon can still discard the branch from its state dir.
  auto loaded = lossy::LossyJournal::Load(State());
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  auto restored = loaded->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().ToString();
  EXPECT_EQ(ReadText(Host("restore.txt")), "old-restore\n");
}

TEST_F(InstrumentTest, WithoutTracingEverythingElseWorksAndTheDecisionIsConservative) {
  InstrumentationOptions opts;
  opts.tracing = false;
  Instrumentation untraced(opts);
  EXPECT_EQ(untraced.TracingStatus().error().code(), Code::kUnavailable);
  std::filesystem::create_directories(State() + "-early");
  auto early = untraced.Prepare(policy_, State() + "-early");
  ASSERT_TRUE(early.ok()) << early.error().ToString();
  EXPECT_EQ((*early)->Finish().status().error().code(), Code::kFailedPrecondition);  // before Attach
  early->reset();

  StartBranch(untraced);
  ASSERT_NE(sb_, nullptr);
  EXPECT_FALSE(probe_->traced());
  EXPECT_EQ(probe_->Attach(*sb_).error().code(), Code::kFailedPrecondition);
  auto r = Run("echo u > " + Host("none.txt") + "; (exec 3<>/dev/tcp/10.255.255.1/9) 2>/dev/null; true");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  BranchReport rep = Finish();
  EXPECT_FALSE(rep.traced);
  EXPECT_TRUE(rep.HasFlag(kFlagUntraced));
  EXPECT_TRUE(rep.effects.empty());
  EXPECT_TRUE(rep.checkpoint.criu_dump) << "an untraced action must never elide the dump";
  EXPECT_GE(rep.denied_egress, 1u);  // the guard works without the tracer
  ASSERT_EQ(rep.lossy_effects.size(), 1u);
  EXPECT_EQ(rep.lossy_effects[0].tag, "tuning");
}

}  // namespace
}  // namespace specula::instrument
