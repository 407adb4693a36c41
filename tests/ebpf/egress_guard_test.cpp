// Integration: EgressGuard's cgroup hooks on the real kernel. A gated child
// is moved into a fresh cgroup2 directory, enters its own network namespace
// (loopback only: nothing can leave this machine even when a connect is
// allowed) and reports the errno of each attempt. Denied by the guard means
// EPERM; allowed to a destination without a route means ENETUNREACH.
#include "ebpf/egress_guard.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "tests/ebpf/ebpf_test_util.h"

namespace specula::ebpf {
namespace {

using testing::GatedChild;
using testing::TestCgroup;

struct Attempts {
  int loopback = -1;  // errno of each attempt, 0 on success
  int tcp4 = -1;      // connect 10.255.255.1:9
  int udp4 = -1;      // sendto 10.255.255.1:9
  int tcp6 = -1;      // connect [fd00::1]:9
  int tcp4_port80 = -1;
};

struct ChildArgs {
  int report_fd;
};

// 10.255.255.1: a private address, reached only through our empty netns.
constexpr uint32_t kTenDotOne = 0x0AFFFF01;

int ErrnoOf(int rc) { return rc == 0 ? 0 : errno; }

int Connect4(uint32_t ip, uint16_t port, int type) {
  int s = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(ip);
  int err;
  if (type == SOCK_DGRAM) {
    err = ::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 1 ? 0 : errno;
  } else {
    err = ErrnoOf(::connect(s, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)));
  }
  ::close(s);
  return err;
}

// In the child: own netns with lo up, then each attempt. System calls only.
int TryEgress(void* p) {
  auto* a = static_cast<ChildArgs*>(p);
  if (::unshare(CLONE_NEWNET) != 0) return 50;
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return 51;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) return 52;
  ::close(s);

  Attempts r;
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(4242);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 || ::listen(ls, 4) != 0) return 53;
  r.loopback = Connect4(INADDR_LOOPBACK, 4242, SOCK_STREAM);
  r.tcp4 = Connect4(kTenDotOne, 9, SOCK_STREAM);
  r.udp4 = Connect4(kTenDotOne, 9, SOCK_DGRAM);
  r.tcp4_port80 = Connect4(kTenDotOne, 80, SOCK_STREAM);
  int s6 = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(9);
  if (s6 < 0 || ::inet_pton(AF_INET6, "fd00::1", &sin6.sin6_addr) != 1) return 54;
  r.tcp6 = ErrnoOf(::connect(s6, reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6)));
  if (::write(a->report_fd, &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) return 55;
  return 0;
}

class EgressGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, cgroup writes, netns)";
  }
  // Runs TryEgress in a child placed in cg; fails the test on child errors.
  Attempts Run(const TestCgroup& cg) {
    Attempts r;
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd(p[0]), wr(p[1]);
    ChildArgs args{wr.get()};
    GatedChild child(TryEgress, &args);
    wr.Reset();
    EXPECT_TRUE(cg.Move(child.pid()));
    EXPECT_TRUE(child.Release());
    EXPECT_EQ(child.Wait(), 0);
    EXPECT_EQ(::read(rd.get(), &r, sizeof(r)), static_cast<ssize_t>(sizeof(r)));
    return r;
  }
};

TEST_F(EgressGuardTest, LoopbackModeDeniesEverythingElseWithEperm) {
  TestCgroup cg("egress-lo");
  ASSERT_TRUE(cg.ok()) << cg.error();
  policy::Network net;
  net.mode = policy::NetworkMode::kLoopback;
  Result<EgressGuard> guard = EgressGuard::Attach(cg.path(), net);
  ASSERT_TRUE(guard.ok()) << guard.error().ToString();

  Attempts r = Run(cg);
  EXPECT_EQ(r.loopback, 0) << std::strerror(r.loopback);
  EXPECT_EQ(r.tcp4, EPERM) << std::strerror(r.tcp4);
  EXPECT_EQ(r.udp4, EPERM) << std::strerror(r.udp4);
  EXPECT_EQ(r.tcp6, EPERM) << std::strerror(r.tcp6);
  EXPECT_EQ(r.tcp4_port80, EPERM);
  Result<uint64_t> denied = guard->DeniedCount();
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(*denied, 4u);

  // Detached: the same attempts now reach routing and find no route.
  guard->Detach();
  r = Run(cg);
  EXPECT_EQ(r.tcp4, ENETUNREACH) << std::strerror(r.tcp4);
  EXPECT_EQ(r.tcp6, ENETUNREACH) << std::strerror(r.tcp6);
  EXPECT_EQ(*guard->DeniedCount(), 4u);
}

TEST_F(EgressGuardTest, NoneModeBehavesAsLoopbackOnly) {
  TestCgroup cg("egress-none");
  ASSERT_TRUE(cg.ok()) << cg.error();
  policy::Network net;
  net.mode = policy::NetworkMode::kNone;
  Result<EgressGuard> guard = EgressGuard::Attach(cg.path(), net);
  ASSERT_TRUE(guard.ok()) << guard.error().ToString();
  Attempts r = Run(cg);
  EXPECT_EQ(r.loopback, 0);
  EXPECT_EQ(r.tcp4, EPERM);
  EXPECT_EQ(r.udp4, EPERM);
}

TEST_F(EgressGuardTest, AllowlistLetsListedEndpointsThrough) {
  TestCgroup cg("egress-allow");
  ASSERT_TRUE(cg.ok()) << cg.error();
  policy::Network net;
  net.mode = policy::NetworkMode::kAllowlist;
  net.allow = {{"10.255.255.0/24", 9}, {"fd00::/8", 0}};
  Result<EgressGuard> guard = EgressGuard::Attach(cg.path(), net);
  ASSERT_TRUE(guard.ok()) << guard.error().ToString();

  Attempts r = Run(cg);
  EXPECT_EQ(r.loopback, 0);
  EXPECT_EQ(r.tcp4, ENETUNREACH) << "allowed, then no route: " << std::strerror(r.tcp4);
  EXPECT_EQ(r.udp4, ENETUNREACH) << std::strerror(r.udp4);
  EXPECT_EQ(r.tcp6, ENETUNREACH) << std::strerror(r.tcp6);
  EXPECT_EQ(r.tcp4_port80, EPERM) << "port 80 is not listed";
  Result<EgressCounts> c = guard->Counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->allowed, 3u);
  EXPECT_EQ(c->denied, 1u);
}

TEST_F(EgressGuardTest, LossyEgressAllowsAndCounts) {
  TestCgroup cg("egress-lossy");
  ASSERT_TRUE(cg.ok()) << cg.error();
  policy::Network net;
  net.mode = policy::NetworkMode::kLossyEgress;
  net.lossy_tag = "net";
  Result<EgressGuard> guard = EgressGuard::Attach(cg.path(), net);
  ASSERT_TRUE(guard.ok()) << guard.error().ToString();
  Attempts r = Run(cg);
  EXPECT_EQ(r.tcp4, ENETUNREACH);
  EXPECT_EQ(r.udp4, ENETUNREACH);
  EXPECT_EQ(r.tcp6, ENETUNREACH);
  EXPECT_EQ(r.tcp4_port80, ENETUNREACH);
  Result<EgressCounts> c = guard->Counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->lossy, 4u);
  EXPECT_EQ(c->denied, 0u);
}

TEST_F(EgressGuardTest, RejectsBadInputBeforeTouchingTheKernel) {
  policy::Network net;
  net.mode = policy::NetworkMode::kAllowlist;
  net.allow = {{"10.0.0.0/33", 0}};
  Result<EgressGuard> g = EgressGuard::Attach("/sys/fs/cgroup/unified", net);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), Code::kInvalidArgument);
  net.mode = policy::NetworkMode::kLoopback;
  g = EgressGuard::Attach("/nonexistent/cgroup", net);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace specula::ebpf
