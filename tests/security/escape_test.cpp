// The three escapes from host root found in the first attack round (issue
// 12), each as the attack that worked, run against a real speculad with the
// default policy and a session over the host's /.
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <thread>

#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using Escapes = SecurityTest;

// Escape 1 (ptrace class; the runc/crun "container init is ptraceable"
// family): init, pid 1 of the branch, ran unfiltered, dumpable and with
// CAP_MKNOD, so an action could seize it and make it mknod /dev/kmsg (or a
// host block device) for the action to write. Committed and discarded.
TEST_F(Escapes, InitCannotBePtracedIntoMakingDeviceNodes) {
  RunOut r = Run(Attack("ptrace-init /tmp/kmsg-node"));
  ExpectAllBlocked(r, "ptrace of init");
  EXPECT_TRUE(r.Has("BLOCKED ptrace-seize-init")) << r.out;

  // From a branch that is then discarded (the window speculation opens).
  std::string b = Spec(Attack("ptrace-init /tmp/kmsg-node2"));
  Json shown = WaitBranch(b);
  Abort();
  ASSERT_TRUE(shown.contains("result") && !shown["result"].is_null()) << shown.dump();
  std::string out = shown["result"]["stdout"].get<std::string>();
  EXPECT_EQ(out.find("ESCAPED"), std::string::npos) << out;
  // Whatever happened, the kernel log carries no marker (TearDown) and init
  // reports a filter and no CAP_MKNOD.
  RunOut st = Run("grep -E '^(Seccomp|CapPrm|CapEff|NoNewPrivs):' /proc/1/status");
  EXPECT_TRUE(st.Has("Seccomp:\t2")) << st.out;
  EXPECT_TRUE(st.Has("NoNewPrivs:\t1")) << st.out;
  for (const auto& line : {"CapPrm:", "CapEff:"}) {
    auto at = st.out.find(line);
    ASSERT_NE(at, std::string::npos) << st.out;
    uint64_t caps = std::stoull(st.out.substr(at + std::string(line).size() + 1, 16), nullptr, 16);
    EXPECT_EQ(caps & (1ULL << 27), 0u) << "init keeps CAP_MKNOD: " << st.out;
  }
}

// Runs a racer in the background of the session for `seconds` while many
// short actions enter the sandbox, and returns what it found.
std::string RaceActionsEntering(SecurityTest& t, int actions) {
  RunOut start = t.Run(t.Attack(std::string("steal 600 ") + SPECULAD_PATH) + " > /tmp/race.log 2>&1 &");
  EXPECT_EQ(start.exit_code, 0) << start.err;
  for (int i = 0; i < actions; ++i) {
    auto r = t.TryRun("true");
    if (!r.ok()) {
      ADD_FAILURE() << "action " << i << ": " << r.error().ToString();
      break;
    }
  }
  RunOut log = t.Run("pkill -f 'attack steal' ; sleep 0.2; cat /tmp/race.log");
  return log.out;
}

// Escape 2 (CVE-2024-21626 class, fds leaked into the container): between
// the action child's entry into the branch's pid namespace and its execve,
// the daemon's fds (lock file, listening socket, database) were open and a
// background job could take them with pidfd_getfd.
TEST_F(Escapes, DaemonFdsCannotBeStolenFromActionsEntering) {
  std::string found = RaceActionsEntering(*this, 60);
  EXPECT_NE(found.find("INFO steal loops="), std::string::npos) << "the racer did not run:\n" << found;
  std::istringstream in(found);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("STOLEN", 0) != 0) continue;
    bool runtime = line.find(daemon_->state_dir()) != std::string::npos ||
                   line.find(daemon_->socket()) != std::string::npos || line.find("socket:") != std::string::npos ||
                   line.find("anon_inode:") != std::string::npos || line.find("specula.db") != std::string::npos ||
                   line.find("speculad") != std::string::npos;
    EXPECT_FALSE(runtime) << "a runtime fd was taken from inside the branch: " << line;
  }
}

// Escape 3 (CVE-2019-5736 class, /proc/self/exe of the runtime): in the same
// window /proc/<child>/exe named the daemon's binary, which a background job
// could open and, once the daemon stopped, rewrite.
TEST_F(Escapes, RuntimeBinaryIsNeverTheExeOfAProcessInTheBranch) {
  std::string found = RaceActionsEntering(*this, 60);
  EXPECT_NE(found.find("INFO steal loops="), std::string::npos) << "the racer did not run:\n" << found;
  EXPECT_EQ(found.find("EXE pid="), std::string::npos) << found;
  // And the binary itself is not writable from a branch (the overlay copies
  // it up; TearDown checks the host's hash).
  RunOut w = Run(std::string("echo pwned >> ") + SPECULAD_PATH + "; echo rc=$?");
  EXPECT_EQ(w.exit_code, 0);
}

// Escape 3, second half: sandboxes outlived a killed daemon (init had no
// death signal), so whatever held a reference to the old binary kept
// running. Now every process of the daemon's branches dies with it.
TEST_F(Escapes, BranchProcessesDieWithTheDaemon) {
  RunOut r = Run("(sleep 3600 &) ; true");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string b = Spec("sleep 3600");
  ASSERT_FALSE(b.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_FALSE(SandboxProcessesUsing(daemon_->state_dir()).empty()) << "no live branch to watch";
  daemon_->Kill9();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!SandboxProcessesUsing(daemon_->state_dir()).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(SandboxProcessesUsing(daemon_->state_dir()).empty())
      << "sandbox processes outlived the daemon by 10 s";
  // A restarted daemon finds the session (crash recovery handles the rest).
  daemon_.reset();
  auto d = Daemon::Start(dir_.path());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  daemon_ = std::move(*d);
  RunOut again = Run("echo alive");
  EXPECT_EQ(again.out, "alive\n");
}

}  // namespace
}  // namespace specula::testing
