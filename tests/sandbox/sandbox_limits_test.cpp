// Resource limits from the policy, enforced by the sandbox's cgroups: a fork
// bomb meets the pids limit and a memory hog the memory limit, and both the
// sandbox and the test process carry on.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "sandbox/sandbox.h"
#include "sandbox_test_util.h"

namespace specula::sandbox {
namespace {

using namespace std::chrono_literals;
using testing::MakeSpec;
using testing::ScratchDirs;
using testing::UniqueName;

TEST(SandboxLimitsTest, ForkBombIsStoppedByPidsLimit) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("bomb");
  ScratchDirs dirs(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.resources.pids = 32;
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  // Forks as fast as it can, forever; every child also forks.
  auto r = (*sb)->Run("bomb() { bomb | bomb & }; bomb; sleep 100", 4s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->stderr_data.find("Resource temporarily unavailable"), std::string::npos)
      << r->stderr_data.substr(0, 500);
  // The bomb's leftovers (other sessions? none: same process group) are gone
  // or can be killed; the sandbox still runs actions.
  auto ok = (*sb)->Run("echo survived", 20s);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->stdout_data, "survived\n") << ok->stderr_data.substr(0, 500);
  EXPECT_TRUE((*sb)->Destroy().ok());
  EXPECT_EQ(::kill(::getpid(), 0), 0);
}

TEST(SandboxLimitsTest, MemoryHogIsKilledByMemoryLimit) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("hog");
  ScratchDirs dirs(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.resources.memory_bytes = 64ULL << 20;
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  // A shell string grows to 256 MiB, four times the limit.
  auto r = (*sb)->Run("x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ${#x}", 60s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->stdout_data, "268435456\n");
  EXPECT_TRUE(r->signal == SIGKILL || r->exit_code != 0) << r->exit_code << " " << r->signal;
  auto ok = (*sb)->Run("echo survived", 20s);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->stdout_data, "survived\n");
  EXPECT_TRUE((*sb)->Destroy().ok());
}

}  // namespace
}  // namespace specula::sandbox
