// The whole doctor on this machine (root): what ENVIRONMENT.md says it must
// find, and both output formats.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/spawn.h"
#include "runtime/criu/breakpoint_probe.h"
#include "runtime/doctor/doctor.h"

namespace specula {
namespace {

namespace fs = std::filesystem;

// One doctor run shared by the tests (each run is real and takes ~0.2 s).
class DoctorRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = "/tmp/specula-doctor-run-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    DoctorOptions o;
    o.breakpoint_cache = *dir_ + "/hw-breakpoints";
    o.scratch_dir = *dir_;
    report_ = new DoctorReport(RunDoctor(o));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete report_;
    delete dir_;
  }
  static CheckStatus StatusOf(const std::string& name) {
    const DoctorCheck* c = report_->Find(name);
    EXPECT_NE(c, nullptr) << "no check " << name;
    return c ? c->status : CheckStatus::kMissing;
  }
  static std::string Describe(const std::string& name) {
    const DoctorCheck* c = report_->Find(name);
    return c ? c->name + ": " + c->reason : name + ": absent";
  }
  static DoctorReport* report_;
  static std::string* dir_;
};
DoctorReport* DoctorRunTest::report_ = nullptr;
std::string* DoctorRunTest::dir_ = nullptr;

TEST_F(DoctorRunTest, NothingRequiredIsMissingHere) {
  EXPECT_TRUE(report_->ok()) << FormatDoctorTable(*report_);
}

TEST_F(DoctorRunTest, SandboxFeaturesAreOk) {
  for (const char* name :
       {"kernel", "namespace.pid", "namespace.mount", "namespace.uts", "namespace.ipc",
        "namespace.net", "namespace.cgroup", "userns", "overlayfs", "userns.idmap_overlay", "pivot_root", "cgroup.layout",
        "cgroup.controllers", "cgroup.devices", "seccomp.filter", "seccomp.user_notif"}) {
    EXPECT_EQ(StatusOf(name), CheckStatus::kOk) << Describe(name);
  }
}

TEST_F(DoctorRunTest, CgroupLayoutIsTheHybridHere) {
  const DoctorCheck* c = report_->Find("cgroup.layout");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->reason.find("hybrid"), std::string::npos) << c->reason;
  // Here the limits' controllers are all on v1 hierarchies.
  const DoctorCheck* ctl = report_->Find("cgroup.controllers");
  ASSERT_NE(ctl, nullptr);
  EXPECT_NE(ctl->reason.find("v1: "), std::string::npos) << ctl->reason;
  for (const char* name : {"memory", "pids", "cpu"}) {
    auto v1 = ctl->reason.substr(0, ctl->reason.find(';'));
    EXPECT_NE(v1.find(name), std::string::npos) << ctl->reason;
  }
}

TEST_F(DoctorRunTest, EbpfTypesAsInEnvironmentMd) {
  for (const char* name : {"btf", "ebpf.tracepoint", "ebpf.raw_tp", "ebpf.tp_btf",
                           "ebpf.cgroup_sock_addr"}) {
    EXPECT_EQ(StatusOf(name), CheckStatus::kOk) << Describe(name);
  }
  // Unavailable here, and the design works without them: degraded, optional.
  for (const char* name : {"ebpf.fentry", "ebpf.lsm"}) {
    EXPECT_EQ(StatusOf(name), CheckStatus::kDegraded) << Describe(name);
    EXPECT_FALSE(report_->Find(name)->required);
  }
}

TEST_F(DoctorRunTest, CriuWorks) {
  EXPECT_EQ(StatusOf("criu"), CheckStatus::kOk) << Describe("criu");
  EXPECT_EQ(StatusOf("criu.check"), CheckStatus::kOk) << Describe("criu.check");
}

// Whatever the probe finds, the check, the cache and CriuNeedsNoBreakpoints
// agree, and not-firing is a degraded (worked-around) state, never missing.
TEST_F(DoctorRunTest, BreakpointCheckMatchesTheCacheAndTheCriuDriverAnswer) {
  const DoctorCheck* c = report_->Find("criu.hw_breakpoints");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->required);
  EXPECT_NE(c->status, CheckStatus::kMissing);
  const bool fires = c->status == CheckStatus::kOk;
  if (!fires) {
    EXPECT_NE(c->action.find("CRIU_FAULT=130"), std::string::npos) << c->action;
  }
  auto cached = criu::ReadBreakpointCache(*dir_ + "/hw-breakpoints");
  ASSERT_TRUE(cached.ok()) << cached.error().ToString();
  EXPECT_EQ(*cached, fires);
  EXPECT_EQ(criu::CriuNeedsNoBreakpoints(*dir_ + "/hw-breakpoints"), !fires);
}

// The host's /run is ext4 here (ENVIRONMENT.md), which is why speculad's
// CRIU driver gives CRIU a tmpfs /run of its own: the check probes that, not
// the host's /run (it said "degraded" here while every CRIU call of the
// daemon did have the cache).
TEST_F(DoctorRunTest, KdatCacheIsCheckedThroughTheDriversOwnRun) {
  EXPECT_EQ(StatusOf("criu.kdat_cache"), CheckStatus::kOk) << Describe("criu.kdat_cache");
  for (const auto& c : report_->checks) {
    if (c.name == "criu.kdat_cache") {
      EXPECT_NE(c.reason.find("criu.kdat"), std::string::npos) << c.reason;
    }
  }
}

TEST_F(DoctorRunTest, EveryCheckHasAUniqueNameAReasonAndAnActionUnlessOk) {
  std::set<std::string> names;
  for (const auto& c : report_->checks) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate " << c.name;
    EXPECT_FALSE(c.reason.empty()) << c.name;
    EXPECT_EQ(c.reason.find('\n'), std::string::npos) << c.name << ": reason is not one line";
    if (c.status != CheckStatus::kOk) {
      EXPECT_FALSE(c.action.empty()) << c.name;
    }
  }
  EXPECT_EQ(names.size(), 30u);  // docs/doctor.md lists them
}

// Kernel 6.18 with btrfs built in (ENVIRONMENT.md) and btrfs-progs from
// scripts/setup.sh: a new store enforces disk limits with simple quotas.
TEST_F(DoctorRunTest, DiskLimitsAreEnforcedHere) {
  const DoctorCheck* c = report_->Find("store.fs");
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->required);
  EXPECT_EQ(c->status, CheckStatus::kOk) << c->reason << " -> " << c->action;
  EXPECT_NE(c->reason.find("simple quotas"), std::string::npos) << c->reason;
  EXPECT_NE(c->reason.find("EDQUOT"), std::string::npos) << c->reason;
}

// A store made by an older build is ext4: it keeps working, without limits,
// and the doctor says what to do about it.
TEST(DoctorStoreTest, AnExt4StoreFromAnOlderBuildIsDegraded) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string tmpl = "/tmp/specula-doctor-store-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  std::string img = tmpl + "/layers.img";
  ASSERT_TRUE(Spawn({.argv = {"truncate", "-s", "64M", img}})->success());
  ASSERT_TRUE(Spawn({.argv = {"mkfs.ext4", "-q", "-F", img}})->success());
  DoctorOptions o;
  o.breakpoint_cache = "";
  o.scratch_dir = tmpl;
  o.state_dir = tmpl;
  DoctorReport r = RunDoctor(o);
  const DoctorCheck* c = r.Find("store.fs");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, CheckStatus::kDegraded) << c->reason;
  EXPECT_NE(c->reason.find("ext4"), std::string::npos) << c->reason;
  EXPECT_NE(c->reason.find("not enforced"), std::string::npos) << c->reason;
  EXPECT_NE(c->action.find("converted to btrfs"), std::string::npos) << c->action;
  std::error_code ec;
  fs::remove_all(tmpl, ec);
}

TEST_F(DoctorRunTest, TableListsEveryCheck) {
  std::string t = FormatDoctorTable(*report_);
  for (const auto& c : report_->checks) EXPECT_NE(t.find(c.name), std::string::npos) << c.name;
  EXPECT_NE(t.find("specula can run here"), std::string::npos) << t;
}

// The CLI's entry point, with default options, as `specula doctor --json` runs it.
TEST(DoctorCommandTest, JsonParsesWithOneObjectPerCheck) {
  std::ostringstream out;
  int rc = DoctorCommand(/*json=*/true, out);
  EXPECT_EQ(rc, 0) << out.str();
  nlohmann::json j = nlohmann::json::parse(out.str(), nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << out.str();
  EXPECT_EQ(j["ok"], true);
  ASSERT_TRUE(j["checks"].is_array());
  EXPECT_EQ(j["checks"].size(), 30u);
  const std::set<std::string> statuses = {"ok", "degraded", "missing"};
  for (const auto& c : j["checks"]) {
    ASSERT_TRUE(c.is_object());
    ASSERT_TRUE(c.contains("name") && c["name"].is_string()) << c.dump();
    ASSERT_TRUE(c.contains("status") && c["status"].is_string()) << c.dump();
    EXPECT_TRUE(statuses.count(c["status"].get<std::string>())) << c.dump();
    EXPECT_TRUE(c.contains("required") && c["required"].is_boolean()) << c.dump();
    EXPECT_TRUE(c.contains("reason") && c["reason"].is_string()) << c.dump();
    EXPECT_TRUE(c.contains("action") && c["action"].is_string()) << c.dump();
  }
}

TEST(DoctorCommandTest, TableIsTheDefault) {
  std::ostringstream out;
  EXPECT_EQ(DoctorCommand(/*json=*/false, out), 0) << out.str();
  EXPECT_EQ(out.str().rfind("CHECK", 0), 0u) << out.str();
  std::cout << out.str();  // the machine's report, in the test log

}

}  // namespace
}  // namespace specula
