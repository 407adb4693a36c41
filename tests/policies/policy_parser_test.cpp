// Parser and validator: values, exact file:line:column diagnostics, unknown
// keys, contradictions. Texts have no `extends`, so no files are needed.
#include "policies/policy_parser.h"

#include <gtest/gtest.h>

namespace specula::policy {
namespace {

// Parses text named "site.toml"; returns the diagnostics as strings.
std::vector<std::string> Errors(const std::string& text) {
  PolicyErrors errors;
  auto p = ParsePolicy(text, "site.toml", ShippedResolver(), &errors);
  std::vector<std::string> out;
  for (const auto& d : errors.items()) out.push_back(d.ToString());
  EXPECT_EQ(p.ok(), out.empty());
  return out;
}

Policy ParseOk(const std::string& text) {
  auto p = ParsePolicy(text, "site.toml", ShippedResolver());
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? *p : Policy{};
}

TEST(PolicyParser, EmptyFileIsStructDefaults) {
  Policy p = ParseOk("");
  EXPECT_EQ(p.name, "site");  // from the file name
  EXPECT_EQ(p.source, "site.toml");
  EXPECT_TRUE(p.paths.empty());
  EXPECT_TRUE(p.syscalls.empty());
  EXPECT_EQ(p.resources, Resources{});
  EXPECT_EQ(p.network.mode, NetworkMode::kLoopback);
}

TEST(PolicyParser, ReadsEverySection) {
  Policy p = ParseOk(R"(
name = "full"
description = "all of it"
[filesystem]
hidden = ["/root/.ssh/", { path = "/etc/shadow", reason = "hashes" }]
read_only = ["/boot"]
sandboxed = ["/var//cache"]
[[filesystem.lossy]]
path = "/proc/sys/vm/swappiness"
tag = "vm"
compensation = "none"
reason = "tuning"
[[filesystem.lossy]]
path = "/proc/sys/kernel/sched_*"
tag = "sched"
[syscalls]
allow = ["ptrace"]
deny = ["mount", { name = "umount2", errno = "EACCES" }, { name = "pivot_root", errno = 38 }]
deny_errno = "EROFS"
kill = ["kexec_load"]
defer = ["reboot"]
[network]
mode = "allowlist"
allow = ["10.0.0.0/8:443", "[fd00::/8]:53"]
[resources]
memory = "512MiB"
pids = 100
cpu = 1.5
cpu_weight = 50
disk = "2GiB"
timeout = "1m30s"
stdout_cap = "64KiB"
stderr_cap = 1024
nofile = 1024
[speculation]
max_branches = 6
max_concurrent = 3
promote_nondeterministic = false
normalisations = ["collapse_whitespace"]
[promotion]
target = "base"
allow_setuid = true
allow_file_caps = true
allow_xattrs = true
allow_devices = true
[sandbox]
hostname = "box-1"
capabilities = ["CAP_CHOWN", "net_bind_service"]
)");
  EXPECT_EQ(p.name, "full");
  EXPECT_EQ(p.description, "all of it");
  ASSERT_EQ(p.paths.size(), 6u);
  EXPECT_EQ(p.paths[0], (PathRule{"/root/.ssh", PathMode::kHidden, "", Compensation::kRestore, ""}));
  EXPECT_EQ(p.paths[1], (PathRule{"/etc/shadow", PathMode::kHidden, "", Compensation::kRestore, "hashes"}));
  EXPECT_EQ(p.paths[2].mode, PathMode::kReadOnly);
  EXPECT_EQ(p.paths[3].path, "/var/cache");
  EXPECT_EQ(p.paths[4], (PathRule{"/proc/sys/vm/swappiness", PathMode::kLossy, "vm", Compensation::kNone, "tuning"}));
  EXPECT_EQ(p.paths[5].compensation, Compensation::kRestore);  // the default
  ASSERT_EQ(p.syscalls.size(), 6u);
  EXPECT_EQ(p.syscalls[0], (SyscallRule{"ptrace", SyscallAction::kAllow, EROFS}));
  EXPECT_EQ(p.syscalls[1], (SyscallRule{"mount", SyscallAction::kDeny, EROFS}));
  EXPECT_EQ(p.syscalls[2], (SyscallRule{"umount2", SyscallAction::kDeny, EACCES}));
  EXPECT_EQ(p.syscalls[3], (SyscallRule{"pivot_root", SyscallAction::kDeny, 38}));
  EXPECT_EQ(p.syscalls[4].action, SyscallAction::kKill);
  EXPECT_EQ(p.syscalls[5].action, SyscallAction::kDefer);
  EXPECT_EQ(p.network.mode, NetworkMode::kAllowlist);
  ASSERT_EQ(p.network.allow.size(), 2u);
  EXPECT_EQ(p.network.allow[1], (NetEndpoint{"fd00::/8", 53}));
  EXPECT_EQ(p.resources.memory_bytes, 512ULL << 20);
  EXPECT_EQ(p.resources.pids, 100u);
  EXPECT_EQ(p.resources.cpu_millis, 1500u);
  EXPECT_EQ(p.resources.cpu_weight, 50u);
  EXPECT_EQ(p.resources.upper_disk_bytes, 2ULL << 30);
  EXPECT_EQ(p.resources.action_timeout_ms, 90000u);
  EXPECT_EQ(p.resources.stdout_cap, 64u << 10);
  EXPECT_EQ(p.resources.stderr_cap, 1024u);
  EXPECT_EQ(p.resources.nofile, 1024u);
  EXPECT_EQ(p.speculation.max_branches_per_session, 6u);
  EXPECT_EQ(p.speculation.max_concurrent_branches, 3u);
  EXPECT_FALSE(p.speculation.promote_nondeterministic);
  EXPECT_EQ(p.speculation.normalisations, std::vector<std::string>{"collapse_whitespace"});
  EXPECT_EQ(p.promotion, (Promotion{PromoteTarget::kBase, true, true, true, true}));
  EXPECT_EQ(p.sandbox.hostname, "box-1");
  EXPECT_EQ(p.sandbox.capabilities, (std::vector<std::string>{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}));
}

TEST(PolicyParser, CpuAsMillicpus) {
  EXPECT_EQ(ParseOk("[resources]\ncpu = \"250m\"\n").resources.cpu_millis, 250u);
  EXPECT_EQ(ParseOk("[resources]\ncpu = 2\n").resources.cpu_millis, 2000u);
}

TEST(PolicyDiagnostics, ExactPlaceKeyAndExpectation) {
  auto errs = Errors(
      "[filesystem]\n"
      "\n"
      "[[filesystem.lossy]]\n"
      "path = \"/proc/sys/vm/swappiness\"\n"
      "tag = \"vm\"\n"
      "compensation = \"restor\"\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "site.toml:6:16: filesystem.lossy[0].compensation: expected \"restore\" or \"none\", got \"restor\"");
}

TEST(PolicyDiagnostics, CollectsAllErrorsInFileOrder) {
  auto errs = Errors(
      "[resources]\n"
      "memory = \"lots\"\n"
      "pids = 0\n"
      "[speculation]\n"
      "max_branches = \"eight\"\n"
      "[promotion]\n"
      "target = \"host\"\n");
  ASSERT_EQ(errs.size(), 4u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:2:10: resources.memory: expected a size like \"512MiB\" or \"2GiB\", got \"lots\"");
  EXPECT_EQ(errs[1], "site.toml:3:8: resources.pids: expected an integer in 1..4194304, got 0");
  EXPECT_EQ(errs[2], "site.toml:5:16: speculation.max_branches: expected an integer, got a string");
  EXPECT_EQ(errs[3], "site.toml:7:10: promotion.target: expected \"layer\" or \"base\", got \"host\"");
}

TEST(PolicyDiagnostics, ErrorMessageListsEveryDiagnostic) {
  auto p = ParsePolicy("[resources]\npids = -1\nnofile = 1\n", "x.toml", ShippedResolver());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(p.error().message(),
            "policy x.toml: 2 errors:\n"
            "x.toml:2:8: resources.pids: expected an integer in 1..4194304, got -1\n"
            "x.toml:3:10: resources.nofile: expected an integer in 16..1048576, got 1");
}

TEST(PolicyDiagnostics, UnknownKeysAreErrorsWithSuggestions) {
  auto errs = Errors(
      "nmae = \"x\"\n"
      "[filesystem]\n"
      "hiden = [\"/root\"]\n"
      "[[filesystem.lossy]]\n"
      "path = \"/proc/sys/vm/swappiness\"\n"
      "tag = \"vm\"\n"
      "compensate = \"none\"\n"
      "[frobnicate]\n");
  ASSERT_EQ(errs.size(), 4u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:1:1: nmae: unknown key (did you mean \"name\"?)");
  EXPECT_EQ(errs[1], "site.toml:3:1: filesystem.hiden: unknown key (did you mean \"hidden\"?)");
  EXPECT_EQ(errs[2],
            "site.toml:7:1: filesystem.lossy[0].compensate: unknown key (did you mean \"compensation\"?)");
  EXPECT_EQ(errs[3], "site.toml:8:2: frobnicate: unknown key");
}

TEST(PolicyDiagnostics, SyntaxErrorHasPlace) {
  auto errs = Errors("[filesystem]\nhidden = [\"/a\",\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], "site.toml:2:17: Error while parsing array: encountered end-of-file");
  auto dup = Errors("[resources]\npids = 1\npids = 2\n");
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_EQ(dup[0].rfind("site.toml:3:", 0), 0u) << dup[0];
}

TEST(PolicyDiagnostics, UnknownSyscallAndErrno) {
  auto errs = Errors(
      "[syscalls]\n"
      "deny = [\"mount\", \"mountt\", { name = \"umount2\", errno = \"EPREM\" }]\n"
      "defer = [42]\n");
  ASSERT_EQ(errs.size(), 3u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:2:18: syscalls.deny[1]: unknown syscall \"mountt\" (not known to libseccomp)");
  EXPECT_EQ(errs[1],
            "site.toml:2:56: syscalls.deny[2].errno: expected an errno name like \"EPERM\" or a number, got \"EPREM\"");
  EXPECT_EQ(errs[2], "site.toml:3:10: syscalls.defer[0]: expected a syscall name, got an integer");
}

TEST(PolicyContradictions, PathBothLossyAndHidden) {
  auto errs = Errors(
      "[filesystem]\n"
      "hidden = [\"/proc/sys/vm/swappiness\"]\n"
      "[[filesystem.lossy]]\n"
      "path = \"/proc/sys/vm/swappiness\"\n"
      "tag = \"vm\"\n");
  // Both the duplicate and the lossy-inside-hidden rule fire; both name the path.
  ASSERT_GE(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "site.toml:3:1: filesystem.lossy[0]: path \"/proc/sys/vm/swappiness\" is both hidden "
            "(filesystem.hidden[0], site.toml:2:11) and lossy");
}

TEST(PolicyContradictions, LossyInsideHiddenDirectory) {
  auto errs = Errors(
      "[filesystem]\n"
      "hidden = [\"/proc/sys/vm\"]\n"
      "[[filesystem.lossy]]\n"
      "path = \"/proc/sys/vm/swappiness\"\n"
      "tag = \"vm\"\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "site.toml:3:1: filesystem.lossy[0]: lossy path \"/proc/sys/vm/swappiness\" is inside hidden "
            "path \"/proc/sys/vm\" (filesystem.hidden[0], site.toml:2:11)");
}

TEST(PolicyContradictions, NestedLossyRules) {
  auto errs = Errors(
      "[[filesystem.lossy]]\npath = \"/proc/sys/kernel/sched_*\"\ntag = \"a\"\n"
      "[[filesystem.lossy]]\npath = \"/proc/sys/kernel/sched_rr_timeslice_ms\"\ntag = \"b\"\n"
      "[[filesystem.lossy]]\npath = \"/var/cache/x\"\ntag = \"c\"\n"
      "[[filesystem.lossy]]\npath = \"/var/cache/x/y\"\ntag = \"d\"\ncompensation = \"none\"\n"
      "[[filesystem.lossy]]\npath = \"/proc/sys/kernel/printk\"\ntag = \"e\"\n");
  ASSERT_EQ(errs.size(), 2u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0],
            "site.toml:4:1: filesystem.lossy[1]: lossy path \"/proc/sys/kernel/sched_rr_timeslice_ms\" is already "
            "covered by lossy path \"/proc/sys/kernel/sched_*\" (filesystem.lossy[0], site.toml:1:1)");
  EXPECT_EQ(errs[1],
            "site.toml:10:1: filesystem.lossy[3]: lossy path \"/var/cache/x/y\" is already covered by lossy path "
            "\"/var/cache/x\" (filesystem.lossy[2], site.toml:7:1)");
}

TEST(PolicyContradictions, SyscallBothAllowedAndDeferred) {
  auto errs = Errors("[syscalls]\nallow = [\"reboot\"]\ndefer = [\"reboot\"]\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "site.toml:3:10: syscalls.defer[0]: syscall \"reboot\" is both allow (syscalls.allow[0], "
            "site.toml:2:10) and defer");
}

TEST(PolicyContradictions, LossyPathMustBeAbsoluteWithoutDotDot) {
  auto errs = Errors(
      "[[filesystem.lossy]]\npath = \"proc/sys/vm/swappiness\"\ntag = \"vm\"\n"
      "[[filesystem.lossy]]\npath = \"/proc/sys/../../etc/passwd\"\ntag = \"vm\"\n"
      "[[filesystem.lossy]]\npath = \"/\"\ntag = \"all\"\n"
      "[[filesystem.lossy]]\npath = \"/tmp/x\"\n");
  ASSERT_EQ(errs.size(), 4u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:2:8: filesystem.lossy[0].path: expected an absolute path, got \"proc/sys/vm/swappiness\"");
  EXPECT_EQ(errs[1],
            "site.toml:5:8: filesystem.lossy[1].path: path \"/proc/sys/../../etc/passwd\" must not contain "
            "\".\" or \"..\" components");
  EXPECT_EQ(errs[2], "site.toml:8:8: filesystem.lossy[2].path: the root cannot be lossy (nothing would be sandboxed)");
  EXPECT_EQ(errs[3],
            "site.toml:10:1: filesystem.lossy[3].tag: missing (every lossy entry needs a tag; effects are "
            "journaled under it)");
}

TEST(PolicyContradictions, InvalidCidrAndNetworkModeMismatch) {
  auto errs = Errors("[network]\nmode = \"loopback\"\nallow = [\"10.0.0.1/8:443\", \"10.0.0.0/40\"]\n");
  ASSERT_EQ(errs.size(), 3u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:3:9: network.allow: network.allow is only used with mode \"allowlist\", but mode is \"loopback\"");
  EXPECT_EQ(errs[1],
            "site.toml:3:10: network.allow[0]: \"10.0.0.1/8:443\" has host bits set (did you mean \"10.0.0.0/8\"?)");
  EXPECT_EQ(errs[2].rfind("site.toml:3:28: network.allow[1]: prefix length /40", 0), 0u) << errs[2];
}

TEST(PolicyContradictions, NetworkModeNeedsItsSettings) {
  auto a = Errors("[network]\nmode = \"allowlist\"\n");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], "site.toml:2:8: network.mode: mode \"allowlist\" needs a non-empty network.allow");
  auto b = Errors("[network]\nmode = \"lossy\"\n");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0], "site.toml:2:8: network.mode: mode \"lossy\" needs network.lossy_tag (egress is journaled under it)");
}

TEST(PolicyContradictions, MaxConcurrentAboveMaxBranches) {
  auto errs = Errors("[speculation]\nmax_branches = 2\nmax_concurrent = 3\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], "site.toml:3:18: speculation.max_concurrent: max_concurrent (3) exceeds max_branches (2)");
}

TEST(PolicyContradictions, DuplicatePathSameMode) {
  auto errs = Errors("[filesystem]\nread_only = [\"/boot\", \"/boot/\"]\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "site.toml:2:23: filesystem.read_only[1]: path \"/boot\" is listed twice (first at "
            "filesystem.read_only[0], site.toml:2:14)");
}

TEST(PolicyDiagnostics, WrongTypesNameWhatWasFound) {
  auto errs = Errors("filesystem = 3\n[sandbox]\nhostname = \"bad host\"\ncapabilities = \"CAP_CHOWN\"\n");
  ASSERT_EQ(errs.size(), 3u) << ::testing::PrintToString(errs);
  EXPECT_EQ(errs[0], "site.toml:1:14: filesystem: expected a table, got an integer");
  EXPECT_EQ(errs[1].rfind("site.toml:3:12: sandbox.hostname: expected a host name", 0), 0u) << errs[1];
  EXPECT_EQ(errs[2], "site.toml:4:16: sandbox.capabilities: expected an array, got a string");
}

TEST(PolicyDiagnostics, SizeAndRuleCountsAreBounded) {
  std::string text = "[filesystem]\nhidden = [";
  for (int i = 0; i <= 4096; ++i) text += "\"/p" + std::to_string(i) + "\",";
  text += "]\n";
  auto errs = Errors(text);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_NE(errs[0].find("filesystem.hidden[4096]: too many path rules (at most 4096)"), std::string::npos) << errs[0];
  auto huge = Errors("# " + std::string(2 << 20, 'x') + "\n");
  ASSERT_EQ(huge.size(), 1u);
  EXPECT_EQ(huge[0], "site.toml: larger than 1 MiB, not a policy");
}

TEST(PolicyExplain, StrictDefaultInPlainWords) {
  std::string text = ExplainPolicy(DefaultPolicy());
  EXPECT_NE(text.find("Policy \"default\""), std::string::npos);
  EXPECT_NE(text.find("No path is lossy"), std::string::npos);
  EXPECT_NE(text.find("/proc/sys  (kernel tunables)"), std::string::npos);
  EXPECT_NE(text.find("Deferred: the call waits until the branch is promoted"), std::string::npos);
  EXPECT_NE(text.find("clock_settime"), std::string::npos);
  EXPECT_NE(text.find("Denied, failing with EPERM:"), std::string::npos);
  EXPECT_NE(text.find("Loopback only"), std::string::npos);
  EXPECT_NE(text.find("memory 1 GiB, 512 processes, 1 CPU"), std::string::npos) << text;
  EXPECT_NE(text.find("An action is killed after 60s"), std::string::npos);
  EXPECT_NE(text.find("Up to 8 branches per session, 4 running at once."), std::string::npos);
  EXPECT_NE(text.find("setuid/setgid bits no (cleared)"), std::string::npos);
}

TEST(PolicyExplain, LossyAndEgressAreCalledOut) {
  Policy p = ParseOk(
      "[[filesystem.lossy]]\npath = \"/proc/sys/vm/swappiness\"\ntag = \"vm\"\n"
      "[[filesystem.lossy]]\npath = \"/proc/sys/vm/dirty_ratio\"\ntag = \"vm\"\ncompensation = \"none\"\n"
      "[network]\nmode = \"lossy\"\nlossy_tag = \"egress\"\n");
  std::string text = ExplainPolicy(p);
  EXPECT_NE(text.find("LOSSY: writes go straight to the host"), std::string::npos) << text;
  EXPECT_NE(text.find("/proc/sys/vm/swappiness  [tag vm]\n"
                      "      restore: pre-image saved first, written back if the branch is discarded\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("/proc/sys/vm/dirty_ratio  [tag vm]\n      none: not undone"), std::string::npos);
  EXPECT_NE(text.find("journaled under tag \"egress\""), std::string::npos);
}

}  // namespace
}  // namespace specula::policy
