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

// Forks a child that joins the cgroups by writing "0" to each of
// `procs_fds`, then opens /dev/null, /dev/kmsg and /dev/loop-control and
// mknods /dev/null's numbers at `node`. Returns its Bits, -1 if it did not
// exit.
int ProbeDevices(const std::vector<int>& procs_fds, const std::string& node) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int bits = 0;
    for (int fd : procs_fds) {
      if (::write(fd, "0", 1) != 1) bits |= kJoinFailed;
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
  if (::waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

TEST(SandboxDevicesTest, OnlyTheSandboxsDevicesOpenAndMknodIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  policy::Resources limits;
  auto program = DeviceFilterProgram::Load();
  ASSERT_TRUE(program.ok()) << program.error().ToString();
  auto cg = SandboxCgroup::Create("specula-test", "devices-" + std::to_string(::getpid()), limits, **program);
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

  std::vector<int> fds;
  for (const auto& fd : cg->procs_fds()) fds.push_back(fd.get());
  int bits = ProbeDevices(fds, node);
  ASSERT_GE(bits, 0) << "the probe did not exit";
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

// The program alone: a child that joins only a cgroup2 directory the
// shared program is attached to (its v1 devices cgroup stays the root's,
// which allows everything), in two such directories, one program loaded
// once, as the runtime shares it among all sandboxes.
TEST(SandboxDevicesTest, OneLoadedProgramGuardsEveryCgroupItIsAttachedTo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  auto program = DeviceFilterProgram::Load();
  ASSERT_TRUE(program.ok()) << program.error().ToString();
  if (!(*program)->supported()) GTEST_SKIP() << "no cgroup BPF (specula doctor: sandbox.device_filter)";
  const std::string parent = layout->v2_root + "/specula-test-devbpf-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(parent.c_str(), 0755), 0) << parent;
  for (int i = 0; i < 2; ++i) {
    const std::string dir = parent + "/c" + std::to_string(i);
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
    auto attached = (*program)->Attach(dir);
    ASSERT_TRUE(attached.ok()) << attached.error().ToString();
    EXPECT_TRUE(*attached);
    char tmpl[] = "/tmp/specula-devtest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string node = std::string(tmpl) + "/null2";
    int procs = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(procs, 0);
    int bits = ProbeDevices({procs}, node);
    ::close(procs);
    ASSERT_GE(bits, 0) << "the probe did not exit";
    ::unlink(node.c_str());
    ::rmdir(tmpl);
    EXPECT_FALSE(bits & kJoinFailed) << dir;
    EXPECT_TRUE(bits & kNullOpened) << "an allowed device was refused in " << dir;
    EXPECT_FALSE(bits & kKmsgOpened) << "/dev/kmsg opened in " << dir;
    EXPECT_FALSE(bits & kLoopOpened) << "/dev/loop-control opened in " << dir;
    EXPECT_FALSE(bits & kMknodMade) << "mknod of a device succeeded in " << dir;
    EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir;
  }
  EXPECT_EQ(::rmdir(parent.c_str()), 0) << parent;
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
