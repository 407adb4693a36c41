// Limits the policy declares (issue 12 "Limits ... are enforced"): a fork
// bomb that fills the pids limit must not poison the session. Its processes
// would become the head checkpoint, and every later action restore them into
// a cgroup with no room left for itself.
#include <gtest/gtest.h>

#include <string>

#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using Limits = SecurityTest;

// Resource exhaustion class (fork bomb, CWE-400).
TEST_F(Limits, AForkBombThatFillsThePidsLimitDoesNotPoisonTheSession) {
  std::string s = CreateSession("extends = \"default\"\n[resources]\npids = 48\n");
  ASSERT_FALSE(s.empty());
  // Forks until the kernel says EAGAIN (bash would retry a failed fork for
  // seconds each time); the children outlive the action.
  auto bomb = TryRun(
      "python3 -c 'import os,time\n"
      "for i in range(100):\n"
      "  try:\n"
      "    pid = os.fork()\n"
      "  except OSError:\n"
      "    break\n"
      "  if pid == 0:\n"
      "    time.sleep(3600); os._exit(0)\n"
      "print(\"filled\", i)'",
      s, 120000);
  if (bomb.ok()) {
    EXPECT_NE((*bomb)["stdout"].get<std::string>().find("filled"), std::string::npos) << bomb->dump();
  }
  if (!bomb.ok()) {
    // Refused: the error must say what happened and what to do.
    EXPECT_EQ(bomb.error().code(), Code::kResourceExhausted) << bomb.error().ToString();
    EXPECT_NE(bomb.error().ToString().find("pids"), std::string::npos) << bomb.error().ToString();
  }
  auto next = TryRun("echo next", s, 120000);
  ASSERT_TRUE(next.ok()) << "the session is poisoned: " << next.error().ToString() << "\n" << daemon_->Log();
  EXPECT_EQ((*next)["stdout"], "next\n");
  EXPECT_EQ((*next)["exit_code"], 0);
}

}  // namespace
}  // namespace specula::testing
