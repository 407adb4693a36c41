// Network modes allowlist/lossy give a branch a real route out (slirp4netns,
// sandbox/net_uplink.h) while the egress guard decides what it may reach:
// an allowlisted host endpoint answers, another port of the same host is
// refused, and the route comes back after a CRIU checkpoint and restore.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/unique_fd.h"
#include "tests/runtime_core/core_test_util.h"

namespace specula::core::testing {
namespace {

// The host's first non-loopback IPv4 address, or "" if it has none.
std::string HostAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char buf[INET_ADDRSTRLEN];
    if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) out = buf;
  }
  ::freeifaddrs(list);
  return out;
}

// A TCP server on the host answering every connection with a greeting.
class HostServer {
 public:
  explicit HostServer(const std::string& addr) {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 || ::listen(fd_.get(), 8) != 0 ||
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      fd_.Reset();
      return;
    }
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shutdown() below
        const char msg[] = "hello from the host\n";
        (void)!::write(c, msg, sizeof msg - 1);
        ::close(c);
      }
    });
  }
  ~HostServer() {
    if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::thread thread_;
};

class NetUplinkTest : public CoreFixture {};

TEST_F(NetUplinkTest, AllowlistedHostEndpointIsReachableOthersAreNot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (::access("/usr/bin/slirp4netns", X_OK) != 0) GTEST_SKIP() << "slirp4netns missing (scripts/setup.sh)";
  const std::string host = HostAddress();
  if (host.empty()) GTEST_SKIP() << "the host has no non-loopback IPv4 address";
  HostServer allowed(host), other(host);
  ASSERT_NE(allowed.port(), 0);
  ASSERT_NE(other.port(), 0);
  policy::Policy p = policy::DefaultPolicy();
  p.network.mode = policy::NetworkMode::kAllowlist;
  p.network.allow = {policy::NetEndpoint{host + "/32", allowed.port()}};
  std::string s = NewSession(p);
  auto connect = [&](uint16_t port) {
    return "python3 -c \"import socket; s = socket.create_connection(('" + host + "', " + std::to_string(port) +
           "), timeout=5); print(s.recv(100).decode(), end='')\"";
  };
  auto yes = MustCommit(s, connect(allowed.port()));
  EXPECT_EQ(yes.exit_code, 0) << yes.stderr_data;
  EXPECT_EQ(yes.stdout_data, "hello from the host\n");
  auto no = MustCommit(s, connect(other.port()));
  EXPECT_NE(no.exit_code, 0);
  EXPECT_NE(no.stderr_data.find("PermissionError"), std::string::npos) << no.stderr_data;
  // A live process makes the next checkpoint a CRIU dump (the uplink is
  // dropped for it) and the next commit a restore (which gets a new one).
  auto bg = MustCommit(s, "sleep 300 >/dev/null 2>&1 </dev/null &");
  ASSERT_EQ(bg.exit_code, 0);
  auto ckpt = mgr_->ShowCheckpoint(bg.head);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(ckpt->has_process_image);
  auto again = MustCommit(s, connect(allowed.port()));
  EXPECT_EQ(again.exit_code, 0) << again.stderr_data;
  EXPECT_EQ(again.stdout_data, "hello from the host\n");
}

// Without the egress guard nothing would filter the uplink: an allowlist
// branch then fails closed to loopback.
TEST_F(NetUplinkTest, UnguardedBranchGetsNoRouteOut) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  mgr_.reset();
  SessionManagerOptions o;
  o.state_dir = dir_ + "/state";
  o.instrument = false;  // no tracer, no egress guard
  auto m = SessionManager::Open(o);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  mgr_ = std::move(*m);
  policy::Policy p = policy::DefaultPolicy();
  p.network.mode = policy::NetworkMode::kAllowlist;
  p.network.allow = {policy::NetEndpoint{"192.0.2.0/24", 0}};
  std::string s = NewSession(p);
  auto r = MustCommit(s, "ip route show default | wc -l; ip -o link show | grep -c tap0 || true");
  EXPECT_EQ(r.stdout_data, "0\n0\n");
}

// Loopback mode keeps the old behaviour: no route out at all.
TEST_F(NetUplinkTest, LoopbackModeHasNoRouteOut) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string s = NewSession();
  auto r = MustCommit(s, "ip route show default; ip -o link show | grep -c tap0 || true");
  EXPECT_EQ(r.stdout_data, "0\n") << r.stdout_data;
}

}  // namespace
}  // namespace specula::core::testing
