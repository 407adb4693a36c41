#include "runtime/rpc/auth.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/unique_fd.h"

namespace specula::rpc {
namespace {

TEST(ParseStatusGroups, ReadsTheGroupsLine) {
  auto g = ParseStatusGroups("Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1001 \nNSpid:\t1\n");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, (std::vector<gid_t>{4, 24, 27, 1001}));
  auto empty = ParseStatusGroups("Groups:\t\n");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseStatusGroups, RejectsMissingOrMalformed) {
  EXPECT_FALSE(ParseStatusGroups("Name:\tx\n").ok());
  EXPECT_FALSE(ParseStatusGroups("Groups:\t4 x5\n").ok());
  EXPECT_FALSE(ParseStatusGroups("Groups:\t99999999999999999999\n").ok());
}

TEST(PeerAllowed, RootGroupAndSupplementary) {
  EXPECT_TRUE(PeerAllowed({1, 0, 0, {}}, std::nullopt));
  EXPECT_FALSE(PeerAllowed({1, 1000, 1000, {27}}, std::nullopt));
  EXPECT_TRUE(PeerAllowed({1, 1000, 500, {}}, 500));
  EXPECT_TRUE(PeerAllowed({1, 1000, 1000, {4, 500}}, 500));
  EXPECT_FALSE(PeerAllowed({1, 1000, 1000, {4, 501}}, 500));
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
