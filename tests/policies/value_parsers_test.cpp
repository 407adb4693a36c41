#include "policies/value_parsers.h"

#include <gtest/gtest.h>

namespace specula::policy {
namespace {

TEST(ParseSize, UnitsAndPlainBytes) {
  EXPECT_EQ(ParseSize("512MiB").value(), 512ULL << 20);
  EXPECT_EQ(ParseSize("1.5GiB").value(), 3ULL << 29);
  EXPECT_EQ(ParseSize("4096").value(), 4096u);
  EXPECT_EQ(ParseSize("10M").value(), 10ULL << 20);
  EXPECT_EQ(ParseSize("2GB").value(), 2000000000ULL);
  EXPECT_EQ(ParseSize("1 KiB").value(), 1024u);
  EXPECT_EQ(ParseSize("0B").value(), 0u);
}

TEST(ParseSize, RejectsGarbageAndOverflow) {
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("MiB").ok());
  EXPECT_FALSE(ParseSize("-1MiB").ok());
  EXPECT_FALSE(ParseSize("12 parsecs").ok());
  EXPECT_FALSE(ParseSize("1.").ok());
  EXPECT_FALSE(ParseSize("1e9").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  auto big = ParseSize("20000000TiB");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.why().find("too large"), std::string::npos);
  EXPECT_NE(ParseSize("5 furlongs").why().find("expected a size"), std::string::npos);
}

TEST(ParseDuration, UnitsAndCompound) {
  EXPECT_EQ(ParseDurationMs("30s").value(), 30000u);
  EXPECT_EQ(ParseDurationMs("500ms").value(), 500u);
  EXPECT_EQ(ParseDurationMs("1m30s").value(), 90000u);
  EXPECT_EQ(ParseDurationMs("2h").value(), 7200000u);
  EXPECT_EQ(ParseDurationMs("1.5s").value(), 1500u);
  EXPECT_FALSE(ParseDurationMs("30").ok());  // no unit: ambiguous
  EXPECT_FALSE(ParseDurationMs("").ok());
  EXPECT_FALSE(ParseDurationMs("3d").ok());
  EXPECT_FALSE(ParseDurationMs("s").ok());
}

TEST(ParseErrno, NamesAndNumbers) {
  EXPECT_EQ(ParseErrno("EPERM").value(), EPERM);
  EXPECT_EQ(ParseErrno("EACCES").value(), EACCES);
  EXPECT_EQ(ParseErrno("ENOSYS").value(), ENOSYS);
  EXPECT_EQ(ParseErrno("13").value(), 13);
  EXPECT_FALSE(ParseErrno("EPREM").ok());
  EXPECT_FALSE(ParseErrno("0").ok());
  EXPECT_FALSE(ParseErrno("99999").ok());
}

TEST(ParseCapability, CanonicalForm) {
  EXPECT_EQ(ParseCapability("CAP_CHOWN").value(), "CAP_CHOWN");
  EXPECT_EQ(ParseCapability("net_admin").value(), "CAP_NET_ADMIN");
  EXPECT_FALSE(ParseCapability("CAP_WORLD_DOMINATION").ok());
}

TEST(ParseEndpoint, Ipv4AndIpv6) {
  auto a = ParseEndpoint("10.0.0.0/8:443");
  ASSERT_TRUE(a.ok()) << a.why();
  EXPECT_EQ(a.value().cidr, "10.0.0.0/8");
  EXPECT_EQ(a.value().port, 443);
  auto b = ParseEndpoint("192.168.1.5");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value().cidr, "192.168.1.5/32");
  EXPECT_EQ(b.value().port, 0);
  auto c = ParseEndpoint("[fd00::/8]:53");
  ASSERT_TRUE(c.ok()) << c.why();
  EXPECT_EQ(c.value().cidr, "fd00::/8");
  EXPECT_EQ(c.value().port, 53);
  auto d = ParseEndpoint("::1/128");
  ASSERT_TRUE(d.ok()) << d.why();
  EXPECT_EQ(d.value().cidr, "::1/128");
}

TEST(ParseEndpoint, RejectsInvalid) {
  EXPECT_FALSE(ParseEndpoint("10.0.0.0/33").ok());
  EXPECT_FALSE(ParseEndpoint("10.0.0/8").ok());
  EXPECT_FALSE(ParseEndpoint("300.1.1.1").ok());
  EXPECT_FALSE(ParseEndpoint("10.0.0.0/8:0").ok());
  EXPECT_FALSE(ParseEndpoint("10.0.0.0/8:70000").ok());
  EXPECT_FALSE(ParseEndpoint("[fd00::/8").ok());
  EXPECT_FALSE(ParseEndpoint("example.com:80").ok());
  auto host_bits = ParseEndpoint("10.0.0.1/8");
  ASSERT_FALSE(host_bits.ok());
  EXPECT_NE(host_bits.why().find("did you mean \"10.0.0.0/8\""), std::string::npos) << host_bits.why();
}

TEST(NormalisePolicyPath, NormalisesAndRejects) {
  EXPECT_EQ(NormalisePolicyPath("/var//log/", false).value(), "/var/log");
  EXPECT_EQ(NormalisePolicyPath("/", false).value(), "/");
  EXPECT_FALSE(NormalisePolicyPath("var/log", false).ok());
  EXPECT_FALSE(NormalisePolicyPath("/var/../etc", false).ok());
  EXPECT_FALSE(NormalisePolicyPath("/var/./log", false).ok());
  EXPECT_FALSE(NormalisePolicyPath("/proc/sys/kernel/sched_*", false).ok());
  EXPECT_EQ(NormalisePolicyPath("/proc/sys/kernel/sched_*", true).value(), "/proc/sys/kernel/sched_*");
  EXPECT_FALSE(NormalisePolicyPath("/proc/*/kernel", true).ok());
}

TEST(PathIsWithin, ComponentBoundaries) {
  EXPECT_TRUE(PathIsWithin("/a/b", "/a"));
  EXPECT_TRUE(PathIsWithin("/a", "/a"));
  EXPECT_FALSE(PathIsWithin("/ab", "/a"));
  EXPECT_TRUE(PathIsWithin("/x", "/"));
}

TEST(EditDistance, Basic) {
  EXPECT_EQ(EditDistance("hidden", "hiden"), 1u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("same", "same"), 0u);
}

}  // namespace
}  // namespace specula::policy
