// `extends`: merge rules, shipped names, cycles, errors in a parent file,
// contradictions that only the merged result shows. Uses real files in a
// temporary directory.
#include <gtest/gtest.h>

#include "policies/policy_parser.h"
#include "tests/policies/test_util.h"

namespace specula::policy {
namespace {

using testing::TempDir;

std::vector<std::string> ErrorsOf(const std::string& path) {
  PolicyErrors errors;
  auto p = LoadPolicyFile(path, &errors);
  EXPECT_EQ(p.ok(), errors.empty());
  std::vector<std::string> out;
  for (const auto& d : errors.items()) out.push_back(d.ToString());
  return out;
}

TEST(PolicyExtends, ChildOverridesByKeyAndRule) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string parent = dir.Write("base.toml", R"(
name = "base"
description = "parent"
[filesystem]
hidden = ["/root"]
read_only = ["/boot", "/srv"]
[syscalls]
defer = ["reboot", "swapon"]
[network]
mode = "allowlist"
allow = ["10.0.0.0/8:443"]
[resources]
memory = "2GiB"
pids = 64
[speculation]
normalisations = ["collapse_whitespace"]
)");
  std::string child = dir.Write("child.toml", R"(
extends = "base.toml"
[filesystem]
sandboxed = ["/srv"]
[[filesystem.lossy]]
path = "/proc/sys/vm/swappiness"
tag = "vm"
[syscalls]
deny = [{ name = "reboot", errno = "EACCES" }]
[network]
mode = "loopback"
[resources]
pids = 128
)");
  auto p = LoadPolicyFile(child);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->name, "child");        // a child names itself (file stem), never inherits the name
  EXPECT_EQ(p->description, "");      // nor the parent's description
  EXPECT_EQ(p->source, child);
  ASSERT_EQ(p->extends.size(), 1u);
  EXPECT_EQ(p->extends[0], parent);
  ASSERT_EQ(p->paths.size(), 4u);
  EXPECT_EQ(p->paths[0], (PathRule{"/root", PathMode::kHidden}));
  EXPECT_EQ(p->paths[1], (PathRule{"/boot", PathMode::kReadOnly}));
  EXPECT_EQ(p->paths[2], (PathRule{"/srv", PathMode::kSandboxed}));  // replaced in place
  EXPECT_EQ(p->paths[3].mode, PathMode::kLossy);
  ASSERT_EQ(p->syscalls.size(), 2u);
  EXPECT_EQ(p->syscalls[0], (SyscallRule{"reboot", SyscallAction::kDeny, EACCES}));
  EXPECT_EQ(p->syscalls[1], (SyscallRule{"swapon", SyscallAction::kDefer, EPERM}));
  // [network] is replaced as a whole: no allow list left over with loopback.
  EXPECT_EQ(p->network, Network{});
  EXPECT_EQ(p->resources.memory_bytes, 2ULL << 30);  // inherited
  EXPECT_EQ(p->resources.pids, 128u);                // overridden
  EXPECT_EQ(p->speculation.normalisations, std::vector<std::string>{"collapse_whitespace"});
}

TEST(PolicyExtends, ShippedNameAndChain) {
  TempDir dir;
  dir.Write("mid.toml", "extends = \"default\"\n[resources]\npids = 99\n");
  std::string top = dir.Write("top.toml", "extends = \"mid.toml\"\n[speculation]\nmax_concurrent = 1\n");
  auto p = LoadPolicyFile(top);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->extends.size(), 2u);
  EXPECT_EQ(p->extends[0], dir.path() + "/mid.toml");
  EXPECT_EQ(p->extends[1], FindShippedPolicy("default"));
  EXPECT_EQ(p->resources.pids, 99u);
  EXPECT_EQ(p->speculation.max_concurrent_branches, 1u);
  EXPECT_EQ(p->paths, DefaultPolicy().paths);
  EXPECT_EQ(p->syscalls, DefaultPolicy().syscalls);
}

TEST(PolicyExtends, CycleIsDetected) {
  TempDir dir;
  dir.Write("a.toml", "extends = \"b.toml\"\n");
  std::string b = dir.Write("b.toml", "extends = \"a.toml\"\n");
  auto errs = ErrorsOf(dir.path() + "/a.toml");
  ASSERT_EQ(errs.size(), 1u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], b + ":1:11: extends: extends cycle: " + dir.path() + "/a.toml -> " + b + " -> " +
                         dir.path() + "/a.toml");
}

TEST(PolicyExtends, SelfCycle) {
  TempDir dir;
  std::string a = dir.Write("self.toml", "extends = \"self.toml\"\n[bogus]\n");
  auto errs = ErrorsOf(a);
  ASSERT_EQ(errs.size(), 2u) << ::testing::PrintToString(errs);  // the unknown key is reported once
  EXPECT_EQ(errs[0], a + ":1:11: extends: extends cycle: " + a + " -> " + a);
  EXPECT_EQ(errs[1], a + ":2:2: bogus: unknown key");
}

TEST(PolicyExtends, MissingParent) {
  TempDir dir;
  std::string a = dir.Write("a.toml", "extends = \"nonexistent-policy\"\n");
  auto errs = ErrorsOf(a);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], a + ":1:11: extends: cannot load \"nonexistent-policy\": no shipped policy named "
                         "\"nonexistent-policy\"");
  std::string b = dir.Write("b.toml", "extends = \"sub/x.toml\"\n");
  auto errs_b = ErrorsOf(b);
  ASSERT_EQ(errs_b.size(), 1u);
  EXPECT_NE(errs_b[0].find("no such file"), std::string::npos) << errs_b[0];
}

TEST(PolicyExtends, ErrorsInParentAndChildAreAllReported) {
  TempDir dir;
  std::string parent = dir.Write("p.toml", "[resources]\nmemory = \"huge\"\n");
  std::string child = dir.Write("c.toml", "extends = \"p.toml\"\n[resources]\npids = \"many\"\n");
  auto errs = ErrorsOf(child);
  ASSERT_EQ(errs.size(), 2u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0].rfind(parent + ":2:10: resources.memory:", 0), 0u) << errs[0];
  EXPECT_EQ(errs[1], child + ":3:8: resources.pids: expected an integer, got a string");
}

TEST(PolicyExtends, ContradictionAcrossFilesPointsAtTheChild) {
  TempDir dir;
  dir.Write("p.toml", "[speculation]\nmax_branches = 8\nmax_concurrent = 4\n");
  std::string child = dir.Write("c.toml", "extends = \"p.toml\"\n[speculation]\nmax_branches = 2\n");
  auto errs = ErrorsOf(child);
  ASSERT_EQ(errs.size(), 1u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], child + ":3:16: speculation.max_branches: max_concurrent (4) exceeds max_branches (2)");
}

TEST(PolicyExtends, ChildLossyInsideParentHidden) {
  TempDir dir;
  std::string parent = dir.Write("p.toml", "[filesystem]\nhidden = [\"/srv/secret\"]\n");
  std::string child = dir.Write(
      "c.toml", "extends = \"p.toml\"\n[[filesystem.lossy]]\npath = \"/srv/secret/knob\"\ntag = \"t\"\n");
  auto errs = ErrorsOf(child);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], child + ":2:1: filesystem.lossy[0]: lossy path \"/srv/secret/knob\" is inside hidden path "
                             "\"/srv/secret\" (filesystem.hidden[0], " + parent + ":2:11)");
}

TEST(PolicyExtends, TextWithoutDirectoryUsesShippedResolver) {
  auto p = ParsePolicy("extends = \"kernel-tuning\"\n", "<rpc>", ShippedResolver());
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->extends.size(), 2u);  // kernel-tuning, default
  auto q = ParsePolicy("extends = \"../etc/passwd\"\n", "<rpc>", ShippedResolver());
  EXPECT_FALSE(q.ok());
}

TEST(PolicyFiles, UnreadableFileIsOneDiagnostic) {
  PolicyErrors errors;
  auto p = LoadPolicyFile("/nonexistent/policy.toml", &errors);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), Code::kNotFound);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.items()[0].file, "/nonexistent/policy.toml");
}

}  // namespace
}  // namespace specula::policy
