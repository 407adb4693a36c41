// The shipped policies load, say what their comments say, and default.toml is
// the built-in DefaultPolicy(). Also the `policy check|explain` helpers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "policies/policy_cli.h"
#include "policies/policy_parser.h"
#include "tests/policies/test_util.h"

namespace specula::policy {
namespace {

Policy LoadShipped(const std::string& name) {
  std::string path = FindShippedPolicy(name);
  EXPECT_FALSE(path.empty()) << name;
  auto p = LoadPolicyFile(path);
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? *p : Policy{};
}

const PathRule* Rule(const Policy& p, const std::string& path) {
  for (const auto& r : p.paths) {
    if (r.path == path) return &r;
  }
  return nullptr;
}

TEST(ShippedPolicies, DefaultTomlIsDefaultPolicy) {
  Policy file = LoadShipped("default");
  EXPECT_TRUE(file.extends.empty());
  file.source.clear();  // where it came from is not part of what it says
  EXPECT_EQ(file, DefaultPolicy());
  // Field by field too, so a mismatch says where.
  Policy builtin = DefaultPolicy();
  EXPECT_EQ(file.paths, builtin.paths);
  EXPECT_EQ(file.syscalls, builtin.syscalls);
  EXPECT_EQ(file.network, builtin.network);
  EXPECT_EQ(file.resources, builtin.resources);
  EXPECT_EQ(file.speculation, builtin.speculation);
  EXPECT_EQ(file.promotion, builtin.promotion);
  EXPECT_EQ(file.sandbox, builtin.sandbox);
}

TEST(ShippedPolicies, DefaultIsStrict) {
  Policy p = DefaultPolicy();
  for (const auto& r : p.paths) EXPECT_NE(r.mode, PathMode::kLossy) << r.path;
  EXPECT_EQ(p.network.mode, NetworkMode::kLoopback);
  EXPECT_EQ(p.promotion.target, PromoteTarget::kLayer);
  EXPECT_FALSE(p.promotion.allow_setuid || p.promotion.allow_file_caps || p.promotion.allow_xattrs ||
               p.promotion.allow_devices);
}

TEST(ShippedPolicies, Sysadmin) {
  Policy p = LoadShipped("sysadmin");
  EXPECT_EQ(p.name, "sysadmin");
  ASSERT_EQ(p.extends.size(), 1u);
  EXPECT_EQ(p.extends[0], FindShippedPolicy("default"));
  EXPECT_EQ(p.syscalls, DefaultPolicy().syscalls);  // inherited unchanged
  ASSERT_NE(Rule(p, "/proc/sys"), nullptr);
  EXPECT_EQ(Rule(p, "/proc/sys")->mode, PathMode::kReadOnly);
  ASSERT_NE(Rule(p, "/var/cache/apt"), nullptr);
  EXPECT_EQ(Rule(p, "/var/cache/apt")->mode, PathMode::kSandboxed);
  ASSERT_NE(Rule(p, "/var/log"), nullptr);
  EXPECT_EQ(Rule(p, "/var/log")->mode, PathMode::kSandboxed);
  ASSERT_NE(Rule(p, "/root/.ssh"), nullptr);
  EXPECT_EQ(Rule(p, "/root/.ssh")->mode, PathMode::kHidden);
  for (const auto& r : p.paths) EXPECT_NE(r.mode, PathMode::kLossy) << r.path;
  EXPECT_EQ(p.network.mode, NetworkMode::kLossyEgress);
  EXPECT_EQ(p.network.lossy_tag, "package-fetch");
  EXPECT_EQ(p.promotion.target, PromoteTarget::kBase);
  EXPECT_TRUE(p.promotion.allow_setuid);
  EXPECT_FALSE(p.promotion.allow_devices);
  EXPECT_EQ(p.resources.action_timeout_ms, 600000u);
}

TEST(ShippedPolicies, KernelTuning) {
  Policy p = LoadShipped("kernel-tuning");
  EXPECT_EQ(p.name, "kernel-tuning");
  ASSERT_NE(Rule(p, "/proc/sys"), nullptr);
  EXPECT_EQ(Rule(p, "/proc/sys")->mode, PathMode::kReadOnly);  // everything else stays read-only
  for (const char* knob : {"/proc/sys/kernel/sched_*", "/proc/sys/vm/swappiness",
                           "/proc/sys/net/core/somaxconn", "/sys/kernel/debug/sched"}) {
    const PathRule* r = Rule(p, knob);
    ASSERT_NE(r, nullptr) << knob;
    EXPECT_EQ(r->mode, PathMode::kLossy) << knob;
    EXPECT_EQ(r->compensation, Compensation::kRestore) << knob;
    EXPECT_FALSE(r->tag.empty()) << knob;
    EXPECT_FALSE(r->reason.empty()) << knob;
  }
  const PathRule* none = Rule(p, "/proc/sys/kernel/perf_event_max_sample_rate");
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->compensation, Compensation::kNone);
  EXPECT_EQ(p.speculation.max_concurrent_branches, 1u);
  EXPECT_EQ(p.network.mode, NetworkMode::kLoopback);
}

TEST(ShippedPolicies, FindShippedRejectsPathsAndUnknownNames) {
  EXPECT_FALSE(FindShippedPolicy("default.toml").empty());
  EXPECT_EQ(FindShippedPolicy("default"), FindShippedPolicy("default.toml"));
  EXPECT_EQ(FindShippedPolicy("../policies/default"), "");
  EXPECT_EQ(FindShippedPolicy("/etc/passwd"), "");
  EXPECT_EQ(FindShippedPolicy(".hidden"), "");
  EXPECT_EQ(FindShippedPolicy("no-such-policy"), "");
}

// A policy that gives up the user namespace gets told what that means;
// the default (a user namespace) gets no such note.
TEST(PolicyCli, CheckNotesAPolicyWithoutUserNamespace) {
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckCommand(FindShippedPolicy("kernel-tuning"), false, out, err), 0);
  EXPECT_NE(out.str().find("note: [sandbox] user_namespace = false: root inside a branch is the host's root"),
            std::string::npos)
      << out.str();
  std::ostringstream out2, err2;
  EXPECT_EQ(PolicyCheckCommand(FindShippedPolicy("default"), false, out2, err2), 0);
  EXPECT_EQ(out2.str().find("user_namespace"), std::string::npos) << out2.str();
}

TEST(PolicyCli, CheckOkAndHumanErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckCommand(FindShippedPolicy("sysadmin"), false, out, err), 0);
  EXPECT_NE(out.str().find("ok (policy \"sysadmin\")"), std::string::npos);
  testing::TempDir dir;
  std::string bad = dir.Write("bad.toml", "[network]\nmode = \"everything\"\n[resources]\ntimeout = \"soon\"\n");
  std::ostringstream out2, err2;
  EXPECT_EQ(PolicyCheckCommand(bad, false, out2, err2), 1);
  EXPECT_EQ(out2.str(), "");
  EXPECT_EQ(err2.str(), bad + ":2:8: network.mode: expected \"none\", \"loopback\", \"allowlist\" or \"lossy\", got "
                              "\"everything\"\n" +
                            bad + ":4:11: resources.timeout: expected a duration like \"30s\", \"500ms\" or "
                                  "\"1m30s\", got \"soon\"\n2 errors\n");
}

TEST(PolicyCli, CheckJson) {
  testing::TempDir dir;
  std::string bad = dir.Write("bad.toml", "[speculation]\nmax_branches = 0\n");
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckCommand(bad, true, out, err), 1);
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["file"], bad);
  EXPECT_EQ(j["errors"][0]["line"], 2);
  EXPECT_EQ(j["errors"][0]["column"], 16);
  EXPECT_EQ(j["errors"][0]["key"], "speculation.max_branches");
  EXPECT_EQ(j["errors"][0]["message"], "expected an integer in 1..1024, got 0");
  std::ostringstream out2, err2;
  EXPECT_EQ(PolicyCheckCommand(FindShippedPolicy("default"), true, out2, err2), 0);
  EXPECT_EQ(nlohmann::json::parse(out2.str()), nlohmann::json::parse(R"({"ok":true,"errors":[],"warnings":[],"notes":[]})"));
}

// A valid policy whose network mode depends on the host (slirp4netns)
// passes, with a note that says how traffic leaves.
TEST(PolicyCli, CheckNotesHowAnAllowlistReachesOut) {
  testing::TempDir dir;
  std::string allow = dir.Write("allow.toml", "[network]\nmode = \"allowlist\"\nallow = [\"10.0.0.0/8:443\"]\n");
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckCommand(allow, true, out, err), 0) << err.str();
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["ok"], true);
  ASSERT_EQ(j["notes"].size(), 1u);
  EXPECT_NE(j["notes"][0].get<std::string>().find("slirp4netns"), std::string::npos) << j.dump();
  std::ostringstream text, err2;
  EXPECT_EQ(PolicyCheckCommand(allow, false, text, err2), 0);
  EXPECT_NE(text.str().find("note: network.mode = \"allowlist\""), std::string::npos) << text.str();
  auto p = LoadPolicyFile(allow, nullptr);
  ASSERT_TRUE(p.ok());
  EXPECT_NE(ExplainPolicy(*p).find("Notes\n"), std::string::npos);
  auto loopback = LoadPolicyFile(FindShippedPolicy("default"), nullptr);
  ASSERT_TRUE(loopback.ok());
  EXPECT_TRUE(PolicyNotes(*loopback).empty());
}

TEST(PolicyCli, ExplainByShippedName) {
  std::ostringstream out, err;
  EXPECT_EQ(PolicyExplainCommand("kernel-tuning", false, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("Policy \"kernel-tuning\""), std::string::npos);
  EXPECT_NE(out.str().find("/proc/sys/vm/swappiness  [tag vm]"), std::string::npos) << out.str();
  std::ostringstream jout, jerr;
  EXPECT_EQ(PolicyExplainCommand("default", true, jout, jerr), 0);
  auto j = nlohmann::json::parse(jout.str());
  EXPECT_EQ(j["policy"], "default");
  EXPECT_NE(j["explain"].get<std::string>().find("No path is lossy"), std::string::npos);
  std::ostringstream out3, err3;
  EXPECT_EQ(PolicyExplainCommand("no-such-policy", false, out3, err3), 1);
  EXPECT_NE(err3.str().find("no-such-policy"), std::string::npos);
}

}  // namespace
}  // namespace specula::policy
