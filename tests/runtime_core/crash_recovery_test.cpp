// Crash recovery (DESIGN.md contract 6) against the real kernel: a
// SessionManager in a child process is SIGKILLed while a branch runs
// background processes; a fresh SessionManager on the same state dir must
// find the session and its checkpoints, and leave no sandbox process, cgroup
// or mount behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/files.h"
#include "runtime/apply/apply.h"
#include "runtime/core/crash_recovery.h"
#include "runtime/core/session_manager.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

bool AliveNotZombie(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close = std::strrchr(buf, ')');
  return n > 0 && !(close && close[1] == ' ' && close[2] == 'Z');
}

size_t CountNamed(const std::vector<pid_t>& pids, const char* comm) {
  size_t n = 0;
  for (pid_t pid : pids) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
    std::ifstream in(path);
    std::string name;
    if (std::getline(in, name) && name == comm) ++n;
  }
  return n;
}

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/specula-crash-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    state_ = dir_ + "/state";
  }
  void TearDown() override {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    mgr_.reset();
    // Whatever a failed test left: the same reaping the manager does.
    (void)ReapLeftovers(state_, state_ + "/fs/branches", {branch_});
    for (int i = 0; i < 4; ++i) {
      auto m = MountsUnder(dir_);
      if (!m.ok() || m->empty()) break;
      for (const auto& p : *m) ::umount2(p.c_str(), MNT_DETACH);
    }
    EXPECT_TRUE(RemoveTree(dir_).ok());
  }
  Result<std::unique_ptr<SessionManager>> Open() {
    SessionManagerOptions o;
    o.state_dir = state_;
    return SessionManager::Open(o);
  }

  std::string dir_, state_, branch_ = "none";
  pid_t child_ = -1;
  std::unique_ptr<SessionManager> mgr_;
};

// The child: a daemon stand-in. Writes "<session> <head> <branch>\n" once
// the branch runs, then waits to be killed. Never returns into gtest.
[[noreturn]] void RunDoomedManager(const std::string& state, int out_fd) {
  SessionManagerOptions o;
  o.state_dir = state;
  auto m = SessionManager::Open(o);
  if (!m.ok()) _exit(10);
  CreateSessionRequest req;
  req.policy = policy::DefaultPolicy();
  auto s = (*m)->CreateSession(req);
  if (!s.ok()) _exit(11);
  auto c = (*m)->Commit(s->record.id, "echo committed-before-crash");
  if (!c.ok() || c->exit_code != 0) _exit(12);
  auto b = (*m)->Speculate(s->record.id, "sleep 30 & sleep 30");
  if (!b.ok()) _exit(13);
  for (int i = 0; i < 500; ++i) {
    auto info = (*m)->ShowBranch(*b);
    if (info.ok() && info->state == BranchState::kRunning) break;
    std::this_thread::sleep_for(10ms);
  }
  std::string line = s->record.id + " " + c->head + " " + *b + "\n";
  if (::write(out_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(14);
  for (;;) ::pause();
}

TEST_F(CrashRecoveryTest, RestartAfterSigkillReapsSandboxesAndKeepsHistory) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  child_ = ::fork();
  ASSERT_GE(child_, 0);
  if (child_ == 0) {
    ::close(p[0]);
    RunDoomedManager(state_, p[1]);
  }
  ::close(p[1]);
  std::string line;
  char ch;
  while (::read(p[0], &ch, 1) == 1 && ch != '\n') line += ch;
  ::close(p[0]);
  std::string session, head, branch;
  {
    std::istringstream in(line);
    in >> session >> head >> branch;
  }
  ASSERT_FALSE(branch.empty()) << "the child manager failed before speculating";
  branch_ = branch;

  // Wait until the branch runs init + bash + both sleeps, so the crash
  // really leaves a process tree behind. Wait for the two sleeps by name,
  // then for the tree to settle: a sample taken as soon as three pids
  // exist can hold a short-lived helper of the action's shell, which then
  // exits on its own and reads as "not alive" below (a flake seen in CI).
  std::vector<pid_t> sandbox_pids;
  for (int i = 0; i < 500; ++i) {
    sandbox_pids = PidsInCgroups(SandboxCgroupDirs(branch));
    if (CountNamed(sandbox_pids, "sleep") >= 2) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(CountNamed(sandbox_pids, "sleep"), 2u);
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(50ms);
    auto again = PidsInCgroups(SandboxCgroupDirs(branch));
    std::sort(again.begin(), again.end());
    std::sort(sandbox_pids.begin(), sandbox_pids.end());
    if (again == sandbox_pids) break;
    sandbox_pids = again;
  }
  ASSERT_GE(sandbox_pids.size(), 3u);
  ASSERT_EQ(::kill(child_, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child_, nullptr, 0), child_);
  child_ = -1;

  // The crash left what the restart must clean up.
  const std::string branches = state_ + "/fs/branches";
  auto mounts_before = MountsUnder(branches);
  ASSERT_TRUE(mounts_before.ok());
  EXPECT_GE(mounts_before->size(), 1u) << "the branch overlay should still be mounted";
  for (pid_t pid : sandbox_pids) EXPECT_TRUE(AliveNotZombie(pid)) << pid;

  auto m = Open();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  mgr_ = std::move(*m);

  // Nothing of the crashed branch is left: processes, cgroups, mounts.
  size_t alive = 0;
  for (pid_t pid : sandbox_pids) alive += AliveNotZombie(pid) ? 1 : 0;
  EXPECT_EQ(alive, 0u);
  EXPECT_EQ(SandboxCgroupDirs(branch).size(), 0u);
  auto foreign = ForeignProcessesUsing(state_);
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(foreign->size(), 0u);
  auto mounts_after = MountsUnder(branches);
  ASSERT_TRUE(mounts_after.ok());
  EXPECT_EQ(mounts_after->size(), 0u);

  // The session and its history survive; the branch is recorded discarded.
  auto info = mgr_->ShowSession(session);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->record.head, head);
  EXPECT_EQ(info->live_branches, 0u);
  auto cps = mgr_->ListCheckpoints(session);
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->size(), 2u);
  auto rec = mgr_->store().GetBranch(branch);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, "discarded");

  // And the session still works.
  auto r = mgr_->Commit(session, "echo after-restart");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "after-restart\n");

  // Closing the manager leaves no mount under the state dir at all (the
  // layer filesystem the dead manager mounted was adopted and unmounted).
  mgr_.reset();
  auto left = MountsUnder(dir_);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->size(), 0u) << (left->empty() ? "" : (*left)[0]);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? ss.str() : "<missing>";
}

// A promote to the base interrupted at every step (and one that finished but
// whose checkpoint never reached the database): the restarted manager leaves
// the base exactly as before that promote and drops the journal.
TEST_F(CrashRecoveryTest, InterruptedPromoteToBaseIsUndoneAtEveryStep) {
  const std::string base = dir_ + "/base", upper = dir_ + "/upper";
  ASSERT_TRUE(MakeDirs(base).ok());
  ASSERT_TRUE(MakeDirs(upper).ok());
  std::ofstream(base + "/a") << "old";
  std::ofstream(upper + "/a") << "new";
  std::ofstream(upper + "/b") << "added";
  auto m = Open();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  CreateSessionRequest req;
  req.base = base;
  req.target = policy::PromoteTarget::kBase;
  req.policy = policy::DefaultPolicy();
  auto s = (*m)->CreateSession(req);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  m->reset();
  bool completed = false;
  for (int step = 1; step <= 200 && !completed; ++step) {
    std::string journal = state_ + "/journal/" + s->record.id + ".cinterrupted";
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      apply::ApplyOptions ao;
      ao.journal_dir = journal;
      ao.crash_at = step;
      auto rep = apply::ApplyUpper(upper, base, ao);
      _exit(rep.ok() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 1) << "apply failed at step " << step;
    completed = WEXITSTATUS(status) == 0;  // ran to the end without crashing
    auto again = Open();
    ASSERT_TRUE(again.ok()) << "step " << step << ": " << again.error().ToString();
    EXPECT_EQ(ReadAll(base + "/a"), "old") << "step " << step;
    EXPECT_EQ(::access((base + "/b").c_str(), F_OK), -1) << "step " << step;
    EXPECT_EQ(::access(journal.c_str(), F_OK), -1) << "step " << step;
    auto info = (*again)->ShowSession(s->record.id);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->record.head, s->record.head);
  }
  EXPECT_TRUE(completed);
}

// A destroy that died after deleting the session's rows left its apply
// journals (pre-images of the host's files): the next start removes those,
// and leaves alone an old-style journal it cannot attribute.
TEST_F(CrashRecoveryTest, JournalsOfADestroyedSessionAreRemoved) {
  {
    auto m = Open();
    ASSERT_TRUE(m.ok()) << m.error().ToString();
  }
  const std::string orphan = state_ + "/journal/sgone1234.cgone1234";
  const std::string unattributed = state_ + "/journal/cunknown12";
  ASSERT_TRUE(MakeDirs(orphan + "/pre").ok());
  std::ofstream(orphan + "/pre/x") << "pre-image";
  ASSERT_TRUE(MakeDirs(unattributed).ok());
  auto m = Open();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(::access(orphan.c_str(), F_OK), -1);
  EXPECT_EQ(::access(unattributed.c_str(), F_OK), 0);
}

TEST_F(CrashRecoveryTest, OpenOnACleanStateDirReapsNothing) {
  auto m = Open();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  auto rep = ReapLeftovers(state_, state_ + "/fs/branches", {"b-does-not-exist"});
  ASSERT_TRUE(rep.ok()) << rep.error().ToString();
  EXPECT_EQ(rep->processes_killed, 0u);
  EXPECT_EQ(rep->mounts_removed, 0u);
  EXPECT_EQ(rep->cgroups_removed, 0u);
}

TEST(MountsUnderTest, ListsNothingOutsideAndDeepestFirst) {
  auto root = MountsUnder("/nonexistent-specula-dir");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->empty());
  auto sys = MountsUnder("/sys");
  ASSERT_TRUE(sys.ok());
  ASSERT_FALSE(sys->empty());  // at least /sys/fs/cgroup here
  for (size_t i = 1; i < sys->size(); ++i) {
    auto depth = [](const std::string& s) { return std::count(s.begin(), s.end(), '/'); };
    EXPECT_GE(depth((*sys)[i - 1]), depth((*sys)[i]));
  }
}

}  // namespace
}  // namespace specula::core::testing
