// The device allowlist on a sandbox's cgroup (sandbox/device_filter.h): a
// host-root process (CAP_MKNOD, no seccomp, no nodev) that joins the cgroup
// may open /dev/null but not /dev/kmsg or a loop device, and may not mknod
// any device, even one on the allowlist. Only the cgroup (v1 devices
// controller here, the BPF_CGROUP_DEVICE program on cgroup2) stops it.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "sandbox/device_filter.h"

namespace specula::sandbox {
namespace {

enum Bit { kNullOpened = 1, kKmsgOpened = 2, kLoopOpened = 4, kMknodMade = 8, kJoinFailed = 16, kTtyTried = 32 };

TEST(SandboxDevicesTest, OnlyTheSandboxsDevicesOpenAndMknodIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  policy::Resources limits;
  auto cg = SandboxCgroup::Create("specula-test", "devices-" + std::to_string(::getpid()), limits);
  ASSERT_TRUE(cg.ok()) << cg.error().ToString();
  ASSERT_TRUE(cg->device_filter() || layout->v1.count("devices") > 0)
      << "neither a device filter nor a devices controller";
  std::vector<std::string> dirs = cg->paths();
  if (layout->v1.count("devices") > 0) {
    bool in_devices = false;
    for (const auto& d : dirs) in_devices |= d.rfind(layout->v1.at("devices") + "/", 0) == 0;
    EXPECT_TRUE(in_devices) << "the v1 devices controller is mounted but the sandbox has no devices cgroup";
  }
  char tmpl[] = "/tmp/specula-devtest-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string node = std::string(tmpl) + "/null2";

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bits = 0;
    for (const auto& fd : cg->procs_fds()) {
      if (::write(fd.get(), "0", 1) != 1) bits |= kJoinFailed;
    }
    int f = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (f >= 0) bits |= kNullOpened, ::close(f);
    f = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f >= 0) bits |= kKmsgOpened, ::close(f);
    f = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (f >= 0) bits |= kLoopOpened, ::close(f);
    if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) bits |= kMknodMade;
    ::_exit(bits);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  int bits = WEXITSTATUS(st);
  ::unlink(node.c_str());
  ::rmdir(tmpl);
  EXPECT_FALSE(bits & kJoinFailed);
  EXPECT_TRUE(bits & kNullOpened) << "an allowed device was refused";
  EXPECT_FALSE(bits & kKmsgOpened) << "/dev/kmsg opened from the sandbox's cgroup";
  EXPECT_FALSE(bits & kLoopOpened) << "/dev/loop-control opened from the sandbox's cgroup";
  EXPECT_FALSE(bits & kMknodMade) << "mknod of a device succeeded in the sandbox's cgroup";
  EXPECT_TRUE(cg->Remove().ok());
  // The test's parent cgroups (Create makes them; nothing else uses them).
  for (const auto& d : dirs) ::rmdir(d.substr(0, d.rfind('/')).c_str());
}

TEST(SandboxDevicesTest, TheAllowlistIsWhatTheSandboxsDevProvides) {
  std::string lines;
  for (const auto& r : SandboxDeviceRules()) lines += r.V1Line() + "\n";
  for (const char* want : {"c 1:3 rw\n", "c 1:5 rw\n", "c 1:7 rw\n", "c 1:8 rw\n", "c 1:9 rw\n", "c 5:0 rw\n",
                           "c 5:2 rw\n", "c 136:* rw\n"}) {
    EXPECT_NE(lines.find(want), std::string::npos) << want;
  }
  EXPECT_EQ(lines.find('m'), std::string::npos) << "mknod must never be allowed:\n" << lines;
  EXPECT_EQ(lines.find("b "), std::string::npos) << "no block device:\n" << lines;
}

}  // namespace
}  // namespace specula::sandbox
