// Spec validation, overlay options, mount plan and seccomp compilation.
#include <gtest/gtest.h>

#include <algorithm>

#include "sandbox/capabilities.h"
#include "sandbox/sandbox_plan.h"
#include "sandbox/seccomp_filter.h"

namespace specula::sandbox {
namespace {

SandboxSpec Good() {
  SandboxSpec s;
  s.name = "unit-1";
  s.base = "/";
  s.upper_dir = "/tmp";
  s.work_dir = "/tmp";
  s.run_dir = "/tmp/specula-unit-run";
  s.policy = policy::DefaultPolicy();
  return s;
}

TEST(SandboxPlanTest, ValidatesSpec) {
  EXPECT_TRUE(ValidateSpec(Good()).ok()) << ValidateSpec(Good()).ToString();
  auto bad = [](auto mutate) {
    SandboxSpec s = Good();
    mutate(s);
    return ValidateSpec(s);
  };
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.name = "../x"; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.name = ""; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.base = "relative"; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.layers = {"/nonexistent-layer"}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.run_dir = "/tmp/../etc"; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.binds = {{"/etc", "/proc/x", true}}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.binds = {{"/etc", "/proc/sys", true}}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.binds = {{"/etc", "/proc/self/x", true}}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) {
                 s.binds = {{"/proc/sys/kernel/hostname", "/proc/sys/kernel/hostname", false}};
               }).ok());
  // A host knob over the sandbox's own sysctl file is the one /proc target
  // allowed, and only for a sandbox that runs as the host's root: a knob
  // takes writes from the host's root alone.
  EXPECT_TRUE(bad([](SandboxSpec& s) {
                s.policy.sandbox.user_namespace = false;
                s.binds = {{"/proc/sys/net/core/somaxconn", "/proc/sys/net/core/somaxconn", false}};
              }).ok());
  auto knob_in_userns = bad([](SandboxSpec& s) {
    s.binds = {{"/proc/sys/net/core/somaxconn", "/proc/sys/net/core/somaxconn", false}};
  });
  EXPECT_EQ(knob_in_userns.error().code(), Code::kInvalidArgument);
  EXPECT_NE(knob_in_userns.error().hint().find("user_namespace = false"), std::string::npos);
  // A user namespace needs a sane id range and upper/work on one mount.
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.ids.host_base = 0; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.ids.host_base = 0xFFFF0000u; s.ids.count = 0x10000u; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.work_dir = "/var/tmp"; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.masked_host_paths = {"/"}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.binds = {{"/etc", "/", true}}; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.policy.sandbox.hostname = "bad host"; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.policy.resources.pids = 1; }).ok());
  EXPECT_FALSE(bad([](SandboxSpec& s) { s.shell.cwd = "x"; }).ok());
  auto e = bad([](SandboxSpec& s) { s.name = "a/b"; });
  EXPECT_EQ(e.error().code(), Code::kInvalidArgument);
}

TEST(SandboxPlanTest, OverlayListsTopmostLayerFirst) {
  SandboxSpec s = Good();
  s.layers = {"/l1", "/l2"};
  OverlayLayers o = SandboxOverlayLayers(s);
  EXPECT_EQ(o.lowers, (std::vector<std::string>{"/l2", "/l1", "/"}));
  EXPECT_EQ(o.upper, "/tmp");
  EXPECT_EQ(o.work, "/tmp");
  // Layers go to the kernel as fds, not in an option string: no length limit.
  s.layers.assign(400, "/some/long/layer/path");
  EXPECT_EQ(SandboxOverlayLayers(s).lowers.size(), 401u);
}

TEST(SandboxPlanTest, HostPathsAppearBelowTheBase) {
  SandboxSpec s = Good();
  EXPECT_EQ(InsidePath(s, "/var/lib/specula"), "/var/lib/specula");
  s.base = "/srv/root";
  EXPECT_EQ(InsidePath(s, "/srv/root/var/lib/specula"), "/var/lib/specula");
  EXPECT_EQ(InsidePath(s, "/srv/rootfs/x"), "");
  EXPECT_EQ(InsidePath(s, "/var/lib/specula"), "");
}

TEST(SandboxPlanTest, MountPlanMasksKernelFilesAndTheRuntimesState) {
  SandboxSpec s = Good();
  s.masked_host_paths = {"/var/lib/specula", "/run/specula"};
  auto steps = BuildMountSteps(s);
  auto has = [&](MountStep::Kind k, const std::string& target) {
    return std::any_of(steps.begin(), steps.end(),
                       [&](const MountStep& m) { return m.kind == k && m.target == target; });
  };
  for (const char* p : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware",
                        "/var/lib/specula", "/run/specula"}) {
    EXPECT_TRUE(has(MountStep::Kind::kMask, p)) << p;
  }
  // No proc is mounted after pivot_root any more: it is mounted before.
  EXPECT_FALSE(has(MountStep::Kind::kMount, "/proc"));
}

TEST(SandboxPlanTest, InAUserNamespaceTheParentAttachesBinds) {
  SandboxSpec s = Good();
  s.binds = {{"/etc/hostname", "/opt/x/hostname", true}};
  auto steps = BuildMountSteps(s, {41});
  auto pos = [&](MountStep::Kind k, const std::string& target) {
    auto it = std::find_if(steps.begin(), steps.end(),
                           [&](const MountStep& m) { return m.kind == k && m.target == target; });
    return it == steps.end() ? -1 : static_cast<int>(it - steps.begin());
  };
  int touch = pos(MountStep::Kind::kTouch, "/opt/x/hostname");
  int await = pos(MountStep::Kind::kAwaitParent, "");
  int detach = pos(MountStep::Kind::kDetach, "/proc");
  EXPECT_EQ(pos(MountStep::Kind::kAttach, "/opt/x/hostname"), -1);
  ASSERT_GE(touch, 0);
  ASSERT_GE(await, 0);
  EXPECT_LT(touch, await);
  EXPECT_LT(await, detach);
}

TEST(SandboxPlanTest, MountPlanDetachesOldRootAfterBindsAndAppliesRules) {
  SandboxSpec s = Good();
  s.policy.sandbox.user_namespace = false;  // host knobs need the host's root
  s.binds = {{"/etc/hostname", "/opt/x/hostname", true},
             {"/proc/sys/net/core/somaxconn", "/proc/sys/net/core/somaxconn", false}};
  s.policy.paths.push_back({"/etc", policy::PathMode::kHidden});
  auto steps = BuildMountSteps(s, {41, 42});
  auto pos = [&](MountStep::Kind k, const std::string& target) {
    auto it = std::find_if(steps.begin(), steps.end(),
                           [&](const MountStep& m) { return m.kind == k && m.target == target; });
    return it == steps.end() ? -1 : static_cast<int>(it - steps.begin());
  };
  int bind = pos(MountStep::Kind::kAttach, "/opt/x/hostname");
  int touch = pos(MountStep::Kind::kTouch, "/opt/x/hostname");
  int detach = pos(MountStep::Kind::kDetach, "/proc");
  int proc_ro = pos(MountStep::Kind::kReadOnly, "/proc/sys");
  int knob = pos(MountStep::Kind::kAttach, "/proc/sys/net/core/somaxconn");
  int hide = pos(MountStep::Kind::kMask, "/etc");
  ASSERT_GE(bind, 0);
  ASSERT_GE(knob, 0);
  EXPECT_LT(touch, bind);
  EXPECT_LT(bind, detach);
  EXPECT_LT(detach, proc_ro);
  // The host's knob covers the sandbox's own file: after the fresh /proc and
  // its read-only /proc/sys, before the policy rules.
  EXPECT_LT(proc_ro, knob);
  EXPECT_LT(knob, hide);
  EXPECT_EQ(pos(MountStep::Kind::kTouch, "/proc/sys/net/core/somaxconn"), -1);
  EXPECT_EQ(steps[bind].fd, 41);
  EXPECT_EQ(steps[knob].fd, 42);
  EXPECT_TRUE(steps[bind].read_only);
  EXPECT_FALSE(steps[knob].read_only);
  EXPECT_GE(pos(MountStep::Kind::kMount, "/run"), 0);
  EXPECT_GE(pos(MountStep::Kind::kTmpfsIfDir, "/var/run"), 0);
  for (const auto& st : steps) EXPECT_LT(st.step.size(), 56u) << st.step;

  auto ext = BuildExternalMounts(s);
  ASSERT_EQ(ext.size(), SandboxDevices().size() + 2);
  EXPECT_EQ(ext[0].sandbox_path, "/dev/null");
  EXPECT_EQ(ext[ext.size() - 2].host_path, "/etc/hostname");
  EXPECT_EQ(ext.back().sandbox_path, "/proc/sys/net/core/somaxconn");
  EXPECT_EQ(ext.back().key.find_first_of(":[]/"), std::string::npos);
}

TEST(SandboxPlanTest, SeccompRulesAreValidated) {
  using policy::SyscallAction;
  auto ok = BuildSeccompProgram({});
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_FALSE(ok->has_defer);
  EXPECT_GT(ok->filter.size(), 20u);
  EXPECT_FALSE(BuildSeccompProgram({{"no_such_syscall", SyscallAction::kDeny}}).ok());
  EXPECT_FALSE(BuildSeccompProgram({{"reboot", SyscallAction::kDeny}, {"reboot", SyscallAction::kKill}}).ok());
  EXPECT_FALSE(BuildSeccompProgram({{"reboot", SyscallAction::kDeny, 0}}).ok());
  auto defer = BuildSeccompProgram({{"sethostname", SyscallAction::kDefer}, {"reboot", SyscallAction::kKill}});
  ASSERT_TRUE(defer.ok());
  EXPECT_TRUE(defer->has_defer);
  // The baseline cannot be loosened: an allow rule for bpf is ignored.
  auto allow_bpf = BuildSeccompProgram({{"bpf", SyscallAction::kAllow}});
  ASSERT_TRUE(allow_bpf.ok());
  EXPECT_EQ(allow_bpf->filter.size(), ok->filter.size());
  // ...but a baseline call may be deferred (it still only runs on promotion).
  auto defer_clock = BuildSeccompProgram({{"clock_settime", SyscallAction::kDefer}});
  ASSERT_TRUE(defer_clock.ok());
  EXPECT_TRUE(defer_clock->has_defer);
  auto defer_clone = BuildSeccompProgram({{"clone", SyscallAction::kDefer}});
  ASSERT_TRUE(defer_clone.ok());
  EXPECT_FALSE(defer_clone->has_defer) << "argument-based baseline rules are not overridable";
  EXPECT_EQ(SyscallName(0), "read");
}

TEST(SandboxPlanTest, Capabilities) {
  auto m = CapabilityMask({});
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(*m & (1ULL << 0));       // CHOWN
  EXPECT_FALSE(*m & (1ULL << 21));     // SYS_ADMIN
  auto one = CapabilityMask({"cap_net_bind_service"});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 1ULL << 10);
  EXPECT_FALSE(CapabilityMask({"CAP_FLY"}).ok());
  EXPECT_GE(LastCapability(), 37);
}

}  // namespace
}  // namespace specula::sandbox
