#include "runtime/rpc/auth.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/unique_fd.h"

namespace specula::rpc {
namespace {

TEST(PeerAllowed, RootGroupAndSupplementary) {
  EXPECT_TRUE(PeerAllowed({1, 0, 0, {}}, std::nullopt));
  EXPECT_FALSE(PeerAllowed({1, 1000, 1000, {27}}, std::nullopt));
  EXPECT_TRUE(PeerAllowed({1, 1000, 500, {}}, 500));
  EXPECT_TRUE(PeerAllowed({1, 1000, 1000, {4, 500}}, 500));
  EXPECT_FALSE(PeerAllowed({1, 1000, 1000, {4, 501}}, 500));
}

TEST(CheckPeerAccess, RefusalNamesTheConfiguredGroup) {
  EXPECT_TRUE(CheckPeerAccess({1, 0, 0, {}}, 500, "agents").ok());
  EXPECT_TRUE(CheckPeerAccess({1, 1000, 1000, {4, 500}}, 500, "agents").ok());
  Status refused = CheckPeerAccess({1, 1000, 1000, {4, 501}}, 500, "agents");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Code::kPermissionDenied);
  EXPECT_NE(refused.error().message().find("uid 1000"), std::string::npos);
  EXPECT_NE(refused.error().hint().find("\"agents\""), std::string::npos) << refused.error().hint();
  EXPECT_EQ(refused.error().hint().find("specula"), std::string::npos) << refused.error().hint();
  // A group that does not exist: only root, and the hint says why.
  Status no_group = CheckPeerAccess({1, 1000, 1000, {}}, std::nullopt, "agents");
  ASSERT_FALSE(no_group.ok());
  EXPECT_NE(no_group.error().hint().find("\"agents\" the daemon allows does not exist"), std::string::npos)
      << no_group.error().hint();
}

TEST(ReadPeerCredentials, SeesThisProcessOverASocketPair) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  auto peer = ReadPeerCredentials(a.get());
  ASSERT_TRUE(peer.ok()) << peer.error().ToString();
  EXPECT_EQ(peer->pid, ::getpid());
  EXPECT_EQ(peer->uid, ::getuid());
  EXPECT_EQ(peer->gid, ::getgid());
}

TEST(LookupGroup, KnownAndUnknown) {
  EXPECT_EQ(LookupGroup("root"), std::optional<gid_t>(0));
  EXPECT_EQ(LookupGroup("no-such-group-specula-test"), std::nullopt);
}

}  // namespace
}  // namespace specula::rpc
