// Shared cgroup parents (sandbox/cgroup.h): a closing instance removes the
// parents above it once empty, so another instance making its chain under
// the same parent can find it gone between two mkdirs. Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "sandbox/cgroup.h"
#include "sandbox/device_filter.h"

namespace specula::sandbox {
namespace {

// One instance creates and removes sandbox cgroups under top/a, pruning its
// parents after each as a closing instance does; another prunes top/b (and
// with it `top`, whenever empty) in a loop. Without making the chain again
// on ENOENT, a few of the creates failed with "mkdir ...: No such file".
TEST(CgroupParentTest, CreatingUnderAParentAnotherInstancePrunesNeverFails) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto program = DeviceFilterProgram::Load();
  ASSERT_TRUE(program.ok()) << program.error().ToString();
  const std::string top = "specula-race-" + std::to_string(::getpid());
  std::atomic<bool> done{false};
  std::thread pruner([&] {
    while (!done) {
      (void)RemoveCgroupParent(top + "/b");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  policy::Resources limits;
  int failed = 0;
  std::string first_error;
  for (int i = 0; i < 300; ++i) {
    auto cg = SandboxCgroup::Create(top + "/a", "r" + std::to_string(i), limits, **program);
    if (!cg.ok()) {
      if (failed++ == 0) first_error = cg.error().ToString();
      continue;
    }
    EXPECT_TRUE(cg->Remove().ok());
    (void)RemoveCgroupParent(top + "/a");
  }
  done = true;
  pruner.join();
  EXPECT_EQ(failed, 0) << "first: " << first_error;
  // Nothing left: the last prune emptied everything.
  (void)RemoveCgroupParent(top + "/a");
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok());
  for (const auto& d : CgroupParentDirs(*layout, top)) {
    EXPECT_NE(::access(d.c_str(), F_OK), 0) << d << " left behind";
  }
}

}  // namespace
}  // namespace specula::sandbox
