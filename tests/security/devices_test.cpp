// Device nodes made by any means (issue 12 "Devices"): a branch may open
// only what its /dev provides. Nodes that exist in the base (a host
// /dev/kmsg or loop device copied into a directory the session shows),
// nodes reached through a lossy bind, and mknod attempts all fail, with and
// without the user namespace. Three layers hold it: no CAP_MKNOD and a
// seccomp-refused mknod, nodev on every mount, and the cgroup's device
// allowlist (v1 devices controller and BPF_CGROUP_DEVICE,
// sandbox/device_filter.h); these tests show the result, the sandbox
// integration test (SandboxDevicesTest) shows the cgroup layer alone.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <gtest/gtest.h>

#include <string>

#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using Devices = SecurityTest;

// Host-made nodes of devices a branch must never use: the kernel log
// (writes appear in dmesg: TearDown checks for the marker) and the first
// loop device (a host block device).
void MakeHostNodes(const std::string& dir) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::mknod((dir + "/kmsg").c_str(), S_IFCHR | 0666, makedev(1, 11)), 0);
  ASSERT_EQ(::mknod((dir + "/loop0").c_str(), S_IFBLK | 0666, makedev(7, 0)), 0);
  ASSERT_EQ(::mknod((dir + "/mem").c_str(), S_IFCHR | 0666, makedev(1, 1)), 0);
}

void ExpectNoDeviceOpens(SecurityTest& t, const std::string& dir, const std::string& session) {
  for (const char* n : {"kmsg", "loop0", "mem"}) {
    RunOut r = t.Run(t.Attack("open-dev " + dir + "/" + n), session);
    SecurityTest::ExpectAllBlocked(r, std::string("open of a host ") + n + " node");
    EXPECT_TRUE(r.Has("BLOCKED open-device")) << n << ": " << r.out;
  }
}

// Device node class (CVE-2017-1002101-style host device exposure): nodes
// that are in the base, i.e. visible through the overlay's lower layer.
TEST_F(Devices, DeviceNodesInTheBaseCannotBeOpened) {
  std::string dir = dir_.path() + "/base-devs";
  MakeHostNodes(dir);
  ExpectNoDeviceOpens(*this, dir, "");
}

// The same nodes reached through a lossy bind (a rw bind of a host dir: the
// one way a branch writes the host directly).
TEST_F(Devices, DeviceNodesBehindALossyBindCannotBeOpened) {
  std::string dir = dir_.path() + "/lossy-devs";
  MakeHostNodes(dir);
  std::string s = CreateSession("[[filesystem.lossy]]\npath = \"" + dir + "\"\ntag = \"devs\"\ncompensation = \"none\"\n");
  ASSERT_FALSE(s.empty());
  ExpectNoDeviceOpens(*this, dir, s);
}

// mknod class: no device node can be made, in the user namespace (default)
// or as host root (user_namespace = false), and the names stay unused.
TEST_F(Devices, MknodOfAnyDeviceIsRefused) {
  RunOut r = Run(Attack("mknod /tmp"));
  ExpectAllBlocked(r, "mknod");
  std::string s = CreateSession("[sandbox]\nuser_namespace = false\n");
  ASSERT_FALSE(s.empty());
  RunOut root = Run(Attack("mknod /tmp") + "; " + Attack("open-dev /tmp/attack-kmsg"), s);
  ExpectAllBlocked(root, "mknod without a user namespace");
}

// Without the user namespace the cgroup allowlist is what stands between a
// branch's root and a node in the base: host root inside, the node is still
// refused.
TEST_F(Devices, DeviceNodesInTheBaseCannotBeOpenedWithoutAUserNamespace) {
  std::string dir = dir_.path() + "/root-devs";
  MakeHostNodes(dir);
  std::string s = CreateSession("[sandbox]\nuser_namespace = false\n");
  ASSERT_FALSE(s.empty());
  ExpectNoDeviceOpens(*this, dir, s);
}

// What the sandbox's /dev provides still works.
TEST_F(Devices, TheSandboxsOwnDevicesWork) {
  RunOut r = Run("head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; head -c 2 /dev/zero | wc -c");
  EXPECT_EQ(r.out, "4\nnull-ok\n2\n") << r.err;
}

}  // namespace
}  // namespace specula::testing
