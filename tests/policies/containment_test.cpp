// The policy rules that protect the host and the runtime (policies/containment.h):
// lossy paths that reach the root, the daemon's state dir or knobs no bind
// can reach are errors; risky capabilities and `allow` of a baseline call
// are warnings.
#include "policies/containment.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "policies/policy_cli.h"
#include "policies/policy_parser.h"
#include "test_util.h"

namespace specula::policy {
namespace {

std::string Lossy(const std::string& path) {
  return "[sandbox]\nuser_namespace = false\n[[filesystem.lossy]]\npath = \"" + path + "\"\ntag = \"t\"\n";
}

Result<Policy> Parse(const std::string& text, PolicyErrors* errors = nullptr) {
  return ParsePolicy(text, "site.toml", ShippedResolver(), errors);
}

TEST(PolicyContainment, LossyRootInAnySpellingIsRefused) {
  for (const char* root : {"/", "//", "///", "/./", "/.", "/..", "/../", "/*", "/**", "//*", "/*/", "/?*", "/[a-z]*"}) {
    PolicyErrors errors;
    auto p = Parse(Lossy(root), &errors);
    ASSERT_FALSE(p.ok()) << root;
    EXPECT_EQ(p.error().code(), Code::kInvalidArgument) << root;
    ASSERT_EQ(errors.size(), 1u) << root << ": " << errors.ToString();
    EXPECT_EQ(errors.items()[0].key.rfind("filesystem.lossy[0]", 0), 0u) << errors.ToString();
  }
  // Below the root, a glob is still fine.
  EXPECT_TRUE(Parse(Lossy("/proc/sys/vm/dirty_*")).ok());
}

TEST(PolicyContainment, LossyStateDirIsRefused) {
  for (const char* p : {"/var", "/var/lib", "/var/lib/specula", "/var/lib/specula/layers", "/var/lib/spec*",
                        "/var/li?", "/var/lib/specula/*", "/var/lib/specula/layers/x*"}) {
    PolicyErrors errors;
    auto r = Parse(Lossy(p), &errors);
    ASSERT_FALSE(r.ok()) << p;
    EXPECT_NE(errors.ToString().find("state dir \"/var/lib/specula\""), std::string::npos) << errors.ToString();
    EXPECT_NE(r.error().hint().find("policy check"), std::string::npos);
  }
  for (const char* p : {"/var/log", "/var/lib/apt", "/var/lib/s[a-d]*", "/var/tmp*"}) {
    EXPECT_TRUE(Parse(Lossy(p)).ok()) << p;
  }
}

TEST(PolicyContainment, LossyPathsTouchingAConfiguredDir) {
  EXPECT_TRUE(LossyPathTouches("/srv", "/srv/state"));
  EXPECT_TRUE(LossyPathTouches("/srv/state/db", "/srv/state"));
  EXPECT_TRUE(LossyPathTouches("/srv/st*", "/srv/state"));
  EXPECT_TRUE(LossyPathTouches("/*", "/srv/state"));
  EXPECT_FALSE(LossyPathTouches("/srv/other", "/srv/state"));
  EXPECT_FALSE(LossyPathTouches("/srv/statex", "/srv/state"));
  EXPECT_FALSE(LossyPathTouches("/srv/x*", "/srv/state"));
  EXPECT_TRUE(LossyPathTouches("/srv/state*", "/srv"));  // entries below /srv are inside it
  EXPECT_FALSE(LossyPathTouches("/srv/state*", "/srvx"));
  auto p = Parse("[[filesystem.lossy]]\npath = \"/srv/st*\"\ntag = \"t\"\n");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  Status refused = CheckLossyAvoids(*p, "/srv/state", "the daemon's state dir");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("lossy path \"/srv/st*\" reaches the daemon's state dir \"/srv/state\""),
            std::string::npos)
      << refused.error().message();
  EXPECT_FALSE(refused.error().hint().empty());
  EXPECT_TRUE(CheckLossyAvoids(*p, "/var/lib/specula", "the daemon's state dir").ok());
}

TEST(PolicyContainment, UtsKnobsNoBindReachesAreRefused) {
  for (const char* p : {"/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname", "/proc/sys/kernel/*name",
                        "/proc/sys/kernel/host*"}) {
    PolicyErrors errors;
    ASSERT_FALSE(Parse(Lossy(p), &errors).ok()) << p;
    EXPECT_NE(errors.ToString().find("uts namespace"), std::string::npos) << errors.ToString();
  }
  EXPECT_TRUE(BindCannotReachHost("/proc/sys/kernel/hostname"));
  EXPECT_FALSE(BindCannotReachHost("/proc/sys/kernel/sched_child_runs_first"));
  EXPECT_TRUE(Parse(Lossy("/proc/sys/kernel/sched_*")).ok());
}

TEST(PolicyContainment, WarnsOnRiskyCapabilitiesAndBaselineAllows) {
  auto p = Parse(
      "[sandbox]\ncapabilities = [\"CAP_CHOWN\", \"sys_admin\", \"CAP_SYS_PTRACE\", \"CAP_MKNOD\"]\n"
      "[syscalls]\nallow = [\"bpf\", \"mount\", \"ioctl\", \"getpid\"]\n");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  std::vector<std::string> w = PolicyWarnings(*p);
  ASSERT_EQ(w.size(), 6u);
  std::string all;
  for (const auto& s : w) all += s + "\n";
  for (const char* needle : {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_MKNOD", "\"bpf\" is denied",
                             "\"mount\" is denied", "\"ioctl\" is restricted"}) {
    EXPECT_NE(all.find(needle), std::string::npos) << needle << "\n" << all;
  }
  EXPECT_EQ(all.find("CAP_CHOWN"), std::string::npos) << all;
  EXPECT_EQ(all.find("getpid"), std::string::npos) << all;
  for (const char* shipped : {"default", "sysadmin", "kernel-tuning"}) {
    auto s = LoadPolicyFile(FindShippedPolicy(shipped));
    ASSERT_TRUE(s.ok()) << shipped;
    EXPECT_TRUE(PolicyWarnings(*s).empty()) << shipped;
  }
}

TEST(PolicyContainment, CheckCommandPrintsWarningsAndStillPasses) {
  testing::TempDir dir;
  std::string f = dir.Write("risky.toml", "[sandbox]\ncapabilities = [\"CAP_NET_ADMIN\"]\n[syscalls]\nallow = [\"keyctl\"]\n");
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckCommand(f, false, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("warning: [sandbox] capabilities: CAP_NET_ADMIN"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("warning: syscalls.allow: \"keyctl\""), std::string::npos) << out.str();
  std::ostringstream jout, jerr;
  EXPECT_EQ(PolicyCheckCommand(f, true, jout, jerr), 0);
  auto j = nlohmann::json::parse(jout.str());
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["warnings"].size(), 2u) << j.dump();
  std::string lossy = dir.Write("root.toml", Lossy("/*"));
  std::ostringstream out2, err2;
  EXPECT_EQ(PolicyCheckCommand(lossy, false, out2, err2), 1);
  EXPECT_NE(err2.str().find("root.toml:3:1: filesystem.lossy[0].path: lossy path \"/*\" covers the root"),
            std::string::npos)
      << err2.str();
}

}  // namespace
}  // namespace specula::policy
