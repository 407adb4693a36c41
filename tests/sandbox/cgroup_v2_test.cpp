// The pure cgroup2 code path (issue 16), on any host: the test runs itself
// again in a private mount namespace whose /sys/fs/cgroup is one lone
// cgroup2 mount, which is what a pure cgroup2 host looks like to the
// runtime (sandbox/cgroup.h reads the layout from mountinfo). On a host
// whose cgroup2 offers memory and pids (any pure cgroup2 host) the sandbox's
// cgroup gets its limits in the cgroup2 files and holds, freezes, kills and
// removes a process. On a hybrid host (this one: memory, pids and cpu are
// bound to v1, so cgroup2 offers none of them, and no namespace can change
// that) the same path must refuse the policy's limits with an error that
// says what to do, and leave no directory behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "sandbox/device_filter.h"

namespace specula::sandbox {
namespace {

constexpr char kInnerEnv[] = "SPECULA_PURE_CGROUP2_INNER";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Unmounts everything at and below /sys/fs/cgroup (deepest first), then
// mounts cgroup2 there alone. Only in the private mount namespace.
void MakePureCgroup2() {
  std::vector<std::string> points;
  std::istringstream in(Slurp("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == "/sys/fs/cgroup" || point.rfind("/sys/fs/cgroup/", 0) == 0) points.push_back(point);
  }
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& p : points) {
    ASSERT_EQ(::umount2(p.c_str(), MNT_DETACH), 0) << "umount " << p << ": " << std::strerror(errno);
  }
  ASSERT_EQ(::mount("none", "/sys/fs/cgroup", "cgroup2", 0, nullptr), 0) << std::strerror(errno);
}

bool Offers(const std::string& controllers, const std::string& c) {
  std::istringstream in(controllers);
  std::string w;
  while (in >> w) {
    if (w == c) return true;
  }
  return false;
}

// The half that runs inside the private mount namespace.
void PureCgroup2Inner() {
  ASSERT_NO_FATAL_FAILURE(MakePureCgroup2());
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  EXPECT_EQ(layout->v2_root, "/sys/fs/cgroup");
  EXPECT_TRUE(layout->v1.empty()) << "v1 hierarchies still visible";

  auto program = DeviceFilterProgram::Load();
  ASSERT_TRUE(program.ok()) << program.error().ToString();
  const std::string parent = "specula-test-v2";
  const std::string name = "pure-" + std::to_string(::getpid());
  const std::string parent_dir = "/sys/fs/cgroup/" + parent;
  const std::string dir = parent_dir + "/specula-" + name;
  policy::Resources limits;
  limits.memory_bytes = 256ULL << 20;
  limits.pids = 64;
  limits.cpu_millis = 500;
  limits.cpu_weight = 50;
  std::string controllers = Slurp("/sys/fs/cgroup/cgroup.controllers");
  if (!controllers.empty() && controllers.back() == '\n') controllers.pop_back();
  auto cg = SandboxCgroup::Create(parent, name, limits, **program);

  if (!Offers(controllers, "memory") || !Offers(controllers, "pids")) {
    std::printf("cgroup2 here offers only \"%s\": checking the refusal\n", controllers.c_str());
    ASSERT_FALSE(cg.ok()) << "limits accepted that no hierarchy can enforce";
    EXPECT_EQ(cg.error().code(), Code::kUnavailable) << cg.error().ToString();
    EXPECT_NE(cg.error().message().find("cgroup controller"), std::string::npos) << cg.error().ToString();
    EXPECT_NE(cg.error().hint().find("subtree_control"), std::string::npos) << cg.error().ToString();
    EXPECT_FALSE(Exists(dir)) << dir << " left behind";
    EXPECT_TRUE(RemoveCgroupParent(parent).ok());
    EXPECT_FALSE(Exists(parent_dir)) << parent_dir << " left behind";
    return;
  }

  ASSERT_TRUE(cg.ok()) << cg.error().ToString();
  EXPECT_EQ(cg->paths(), std::vector<std::string>{dir}) << "a pure cgroup2 sandbox has one directory";
  EXPECT_EQ(Slurp(dir + "/memory.max"), "268435456\n");
  EXPECT_EQ(Slurp(dir + "/pids.max"), "64\n");
  if (Offers(controllers, "cpu")) {
    EXPECT_EQ(Slurp(dir + "/cpu.max"), "50000 100000\n");
    EXPECT_EQ(Slurp(dir + "/cpu.weight"), "50\n");
  }
  EXPECT_EQ(cg->device_filter(), (*program)->supported());

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  const std::string pid = std::to_string(child);
  ASSERT_EQ(cg->procs_fds().size(), 1u);
  ASSERT_EQ(::write(cg->procs_fds()[0].get(), pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  auto pids = cg->Pids();
  ASSERT_TRUE(pids.ok()) << pids.error().ToString();
  EXPECT_EQ(*pids, std::vector<pid_t>{child});
  EXPECT_TRUE(cg->Freeze().ok());
  EXPECT_NE(Slurp(dir + "/cgroup.events").find("frozen 1"), std::string::npos);
  EXPECT_TRUE(cg->Thaw().ok());
  EXPECT_TRUE(cg->KillAll().ok());
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(cg->Remove().ok());
  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(RemoveCgroupParent(parent).ok());
  EXPECT_FALSE(Exists(parent_dir));
}

TEST(CgroupV2Test, ThePureCgroup2PathEnforcesLimitsOrRefusesThem) {
  if (std::getenv(kInnerEnv) != nullptr) {
    PureCgroup2Inner();
    return;
  }
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = std::string(kInnerEnv) + "=1 unshare --mount --propagation private " + self +
                          " --gtest_filter=CgroupV2Test.ThePureCgroup2PathEnforcesLimitsOrRefusesThem 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

}  // namespace
}  // namespace specula::sandbox
