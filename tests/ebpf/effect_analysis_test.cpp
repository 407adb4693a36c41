// Unit: the decisions drawn from effect events, and the allowlist parser.
#include "ebpf/effect_analysis.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include "ebpf/egress_guard.h"

namespace specula::ebpf {
namespace {

EffectEvent Fork(pid_t parent, pid_t child) {
  EffectEvent e;
  e.op = EffectOp::kFork;
  e.tgid = parent;
  e.aux = static_cast<uint64_t>(child);
  return e;
}
EffectEvent Exit(pid_t tgid) {
  EffectEvent e;
  e.op = EffectOp::kExit;
  e.tgid = tgid;
  return e;
}
EffectEvent Op(EffectOp op, int64_t result) {
  EffectEvent e;
  e.op = op;
  e.result = result;
  return e;
}

TEST(EffectAnalysis, BalancedForksLeaveNothing) {
  std::vector<EffectEvent> ev = {Fork(1, 10), Fork(10, 11), Exit(11), Exit(10)};
  EXPECT_FALSE(LeftLiveProcesses(ev));
  EXPECT_TRUE(ProcessesLeftRunning(ev).empty());
}

TEST(EffectAnalysis, DaemonizedGrandchildIsLeftRunning) {
  // bash forks a shell that forks a server and exits: the server lives on.
  std::vector<EffectEvent> ev = {Fork(1, 10), Fork(10, 11), Exit(10)};
  EXPECT_TRUE(LeftLiveProcesses(ev));
  EXPECT_EQ(ProcessesLeftRunning(ev), std::vector<pid_t>{11});
}

TEST(EffectAnalysis, ExitBeforeForkRecordStillBalances) {
  std::vector<EffectEvent> ev = {Exit(11), Fork(10, 11)};
  EXPECT_FALSE(LeftLiveProcesses(ev));
}

TEST(EffectAnalysis, ExitOfPreexistingProcessDoesNotCount) {
  std::vector<EffectEvent> ev = {Exit(5)};
  EXPECT_FALSE(LeftLiveProcesses(ev));
}

TEST(EffectAnalysis, CheckpointElidedOnlyWhenProvablySafe) {
  std::vector<EffectEvent> clean = {Fork(1, 10), Exit(10)};
  std::vector<EffectEvent> left = {Fork(1, 10)};
  EXPECT_FALSE(DecideCheckpoint({clean, true, false}).criu_dump);
  EXPECT_TRUE(DecideCheckpoint({clean, false, false}).criu_dump) << "incomplete trace";
  EXPECT_TRUE(DecideCheckpoint({clean, true, true}).criu_dump) << "processes from the parent checkpoint";
  CheckpointPlan p = DecideCheckpoint({left, true, false});
  EXPECT_TRUE(p.criu_dump);
  EXPECT_NE(p.reason.find("10"), std::string::npos);
  EXPECT_FALSE(DecideCheckpoint({{}, true, false}).criu_dump);
}

TEST(EffectAnalysis, CarriedProcessesMustExitBeforeElision) {
  // Step 1 starts a server (tgid 11); step 2 uses it; step 3 kills it.
  std::vector<EffectEvent> start = {Fork(1, 10), Fork(10, 11), Exit(10)};
  CheckpointPlan p1 = DecideCheckpoint({start, true, false});
  EXPECT_TRUE(p1.criu_dump);
  EXPECT_EQ(p1.running, std::vector<pid_t>{11});

  std::vector<EffectEvent> use = {Fork(1, 20), Exit(20)};
  CheckpointPlan p2 = DecideCheckpoint({use, true, false, p1.running});
  EXPECT_TRUE(p2.criu_dump) << "the server still runs";
  EXPECT_EQ(p2.running, std::vector<pid_t>{11});

  std::vector<EffectEvent> kill = {Fork(1, 30), Exit(11), Exit(30)};
  CheckpointPlan p3 = DecideCheckpoint({kill, true, false, p2.running});
  EXPECT_FALSE(p3.criu_dump) << p3.reason;
  EXPECT_TRUE(p3.running.empty());
}

TEST(EffectAnalysis, Nondeterminism) {
  EXPECT_FALSE(ReadNondeterministicInput(std::vector<EffectEvent>{Op(EffectOp::kOpen, 3), Op(EffectOp::kRename, 0)}));
  EXPECT_TRUE(ReadNondeterministicInput(std::vector<EffectEvent>{Op(EffectOp::kGetrandom, 16)}));
  EXPECT_FALSE(ReadNondeterministicInput(std::vector<EffectEvent>{Op(EffectOp::kOpenRandom, -2)}));
  EXPECT_TRUE(ReadNondeterministicInput(std::vector<EffectEvent>{Op(EffectOp::kOpenRandom, 3)}));

  EffectEvent recv = Op(EffectOp::kRecv, 100);
  recv.aux = AF_UNIX;
  EXPECT_FALSE(ReadNondeterministicInput(std::vector<EffectEvent>{recv})) << "local socket";
  recv.aux = AF_INET6;
  EXPECT_TRUE(ReadNondeterministicInput(std::vector<EffectEvent>{recv}));

  EffectEvent conn = Op(EffectOp::kConnect, 0);
  conn.addr.family = AF_INET;
  conn.addr.ip = {127, 0, 0, 1};
  EXPECT_FALSE(ReadNondeterministicInput(std::vector<EffectEvent>{conn}));
  conn.addr.ip = {93, 184, 216, 34};
  EXPECT_TRUE(ReadNondeterministicInput(std::vector<EffectEvent>{conn}));
  conn.result = -1;
  EXPECT_FALSE(ReadNondeterministicInput(std::vector<EffectEvent>{conn}));
}

TEST(EffectEvent, AddressFormatting) {
  EffectAddr a;
  a.family = AF_INET;
  a.ip = {10, 1, 2, 3};
  a.port = 80;
  EXPECT_EQ(a.ToString(), "10.1.2.3:80");
  EXPECT_FALSE(a.IsLoopback());
  a.family = AF_INET6;
  a.ip = {};
  a.ip[15] = 1;
  EXPECT_EQ(a.ToString(), "[::1]:80");
  EXPECT_TRUE(a.IsLoopback());
  a.ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 5};
  EXPECT_TRUE(a.IsLoopback());
}

TEST(EgressRule, ParsesCidrsIntoMappedForm) {
  Result<EgressRule> r = ParseEgressRule({"10.1.2.3/8", 443});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->prefix_bits, 104u);
  EXPECT_EQ(r->port, 443);
  std::array<uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0};
  EXPECT_EQ(r->addr, want) << "host bits are cleared";

  r = ParseEgressRule({"192.168.0.7", 0});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefix_bits, 128u);

  r = ParseEgressRule({"fd00::1/8", 0});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prefix_bits, 8u);
  EXPECT_EQ(r->addr[0], 0xfd);
  EXPECT_EQ(r->addr[15], 0);
}

TEST(EgressRule, RejectsGarbage) {
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "host.example", "10.0.0.0/-1",
                          "1.2.3.4/8/8"}) {
    Result<EgressRule> r = ParseEgressRule({bad, 0});
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << bad;
    }
  }
}

}  // namespace
}  // namespace specula::ebpf
