// Resource limits from the policy, enforced by the sandbox's cgroups: a fork
// bomb meets the pids limit and a memory hog the memory limit, and both the
// sandbox and the test process carry on.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "sandbox/sandbox.h"
#include "sandbox_test_util.h"

namespace specula::sandbox {
namespace {

using namespace std::chrono_literals;
using testing::MakeSpec;
using testing::ScratchDirs;
using testing::UniqueName;

// The CPU weight as the kernel holds it: cgroup2's cpu.weight when the
// sandbox's cgroup2 dir has the cpu controller, else v1's cpu.shares (found
// through the init's /proc/<pid>/cgroup and the v1 cpu mount).
std::string CpuWeightFile(Sandbox& sb) {
  std::string v2 = sb.cgroup2_path() + "/cpu.weight";
  if (::access(v2.c_str(), F_OK) == 0) return v2;
  std::ifstream cg("/proc/" + std::to_string(sb.init_pid()) + "/cgroup");
  std::string rel;
  for (std::string line; std::getline(cg, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrls = "," + line.substr(a + 1, b - a - 1) + ",";
    if (ctrls.find(",cpu,") != std::string::npos) rel = line.substr(b + 1);
  }
  std::ifstream mounts("/proc/self/mounts");
  for (std::string dev, mnt, type, opts; mounts >> dev >> mnt >> type >> opts;) {
    mounts.ignore(1024, '\n');
    if (type == "cgroup" && ("," + opts + ",").find(",cpu,") != std::string::npos && !rel.empty()) {
      return mnt + rel + "/cpu.shares";
    }
  }
  return "";
}

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  in >> v;
  return v;
}

// A warm-pool sandbox is made at the speculative weight and raised when a
// commit runs on it: SetCpuWeight changes what the kernel schedules by, on
// either cgroup layout, and refuses what cgroup2 would.
TEST(SandboxLimitsTest, CpuWeightCanBeRaisedAfterCreate) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string name = UniqueName("weight");
  ScratchDirs dirs(name);
  SandboxSpec spec = MakeSpec(name, dirs);
  spec.policy.resources.cpu_weight = 25;
  auto sb = Sandbox::Create(spec);
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  std::string file = CpuWeightFile(**sb);
  ASSERT_FALSE(file.empty()) << "no cpu controller for the sandbox (specula doctor reports it)";
  const bool v1 = file.size() > 11 && file.compare(file.size() - 11, 11, "/cpu.shares") == 0;
  EXPECT_EQ(ReadTrimmed(file), v1 ? "256" : "25") << file;
  ASSERT_TRUE((*sb)->SetCpuWeight(100).ok());
  EXPECT_EQ(ReadTrimmed(file), v1 ? "1024" : "100") << file;
  EXPECT_FALSE((*sb)->SetCpuWeight(0).ok());
  EXPECT_FALSE((*sb)->SetCpuWeight(10001).ok());
  EXPECT_EQ(ReadTrimmed(file), v1 ? "1024" : "100") << "a refused weight changed it";
  EXPECT_TRUE((*sb)->Destroy().ok());
  EXPECT_FALSE((*sb)->SetCpuWeight(100).ok()) << "a destroyed sandbox has no cgroup to weigh";
}

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
