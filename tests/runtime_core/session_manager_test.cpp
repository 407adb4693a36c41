// The speculation core against the real sandbox, overlayfs and CRIU.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core_test_util.h"
#include "runtime/core/crash_recovery.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox_watch.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

bool HostHas(const std::string& p) {
  struct stat sb;
  return ::lstat(p.c_str(), &sb) == 0;
}

class SessionManagerTest : public CoreFixture {};

TEST_F(SessionManagerTest, RejectsBadSessionsAndCommands) {
  CreateSessionRequest req;
  req.base = "relative";
  EXPECT_EQ(mgr_->CreateSession(req).error().code(), Code::kInvalidArgument);
  req.base = "/";
  req.policy.speculation.normalisations = {"lowercase_everything"};
  EXPECT_EQ(mgr_->CreateSession(req).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(mgr_->Commit("snope", "true").error().code(), Code::kNotFound);
  std::string s = NewSession();
  EXPECT_EQ(mgr_->Speculate(s, std::string("a\0b", 3)).error().code(), Code::kInvalidArgument);
}

// No resource left behind: every SessionManager puts its sandboxes under
// specula/i-<hash of its state dir>/ in each cgroup hierarchy. Once the
// manager is gone, so is that directory (not only the sandboxes' own
// directories below it): CI runs leaked hundreds of empty i-* directories.
TEST_F(SessionManagerTest, AClosedManagerLeavesNoInstanceCgroupDirectory) {
  std::string s = NewSession();
  ASSERT_TRUE(mgr_->Speculate(s, "sleep 30").ok());
  MustCommit(s, "true");
  const std::string instance = sandbox::InstanceCgroupParent(dir_ + "/state");
  auto layout = sandbox::DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  const std::vector<std::string> dirs = sandbox::CgroupParentDirs(*layout, instance);
  bool any = false;
  for (const auto& d : dirs) any = any || HostHas(d);
  ASSERT_TRUE(any) << "the manager's sandboxes were not under " << instance;
  mgr_.reset();
  for (const auto& d : dirs) EXPECT_FALSE(HostHas(d)) << d << " left behind";
}

// The parent directories a manager made for its instance go with it when no
// one else uses them: `specula` itself was left in every hierarchy after
// the last daemon stopped. A parent of this test's own, so that no other
// manager (tests run side by side) holds it.
TEST_F(SessionManagerTest, AClosedManagerRemovesTheParentsItMadeWhenEmpty) {
  mgr_.reset();
  const std::string top = "specula-prune-" + std::to_string(::getpid());
  SessionManagerOptions o;
  o.state_dir = dir_ + "/state2";
  o.cgroup_parent = top + "/i-test";
  auto m = SessionManager::Open(o);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  mgr_ = std::move(*m);
  const std::string s = NewSession();
  ASSERT_TRUE(mgr_->Speculate(s, "sleep 30").ok());
  MustCommit(s, "true");
  auto layout = sandbox::DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  const std::vector<std::string> tops = sandbox::CgroupParentDirs(*layout, top);
  bool any = false;
  for (const auto& d : tops) any = any || HostHas(d + "/i-test");
  ASSERT_TRUE(any) << "the manager's sandboxes were not under " << top;
  // Another user's directory beside the instance keeps the parent.
  const std::string other = tops.front() + "/someone-else";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0) << std::strerror(errno);
  mgr_.reset();
  for (const auto& d : tops) EXPECT_FALSE(HostHas(d + "/i-test")) << d << "/i-test left behind";
  EXPECT_TRUE(HostHas(tops.front())) << "a parent still in use was removed";
  ASSERT_EQ(::rmdir(other.c_str()), 0) << std::strerror(errno);
  // Now empty: a second manager on the same parent makes and removes it again.
  m = SessionManager::Open(o);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  m->reset();  // (the fixture's TearDown finds mgr_ empty)
  for (const auto& d : tops) EXPECT_FALSE(HostHas(d)) << d << " left behind";
  for (const auto& d : tops) (void)::rmdir(d.c_str());
}

// docs/api.md: a name is unique among live sessions (already_exists), and
// free again once that session is gone.
TEST_F(SessionManagerTest, ASessionNameIsUniqueAmongLiveSessions) {
  CreateSessionRequest req;
  req.name = "web-1";
  auto first = mgr_->CreateSession(req);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  auto again = mgr_->CreateSession(req);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
  EXPECT_NE(again.error().message().find(first->record.id), std::string::npos) << again.error().ToString();
  CreateSessionRequest unnamed;  // unnamed sessions never clash
  ASSERT_TRUE(mgr_->CreateSession(unnamed).ok());
  ASSERT_TRUE(mgr_->CreateSession(unnamed).ok());
  ASSERT_TRUE(mgr_->DestroySession(first->record.id).ok());
  EXPECT_TRUE(mgr_->CreateSession(req).ok()) << "the name is free once its session is gone";
}

TEST(SpeculativeCpuWeight, IsAQuarterOfTheCommittedPathsAtLeastOne) {
  EXPECT_EQ(SpeculativeCpuWeight(100), 25u);
  EXPECT_EQ(SpeculativeCpuWeight(10000), 2500u);
  EXPECT_EQ(SpeculativeCpuWeight(3), 1u);
  EXPECT_EQ(SpeculativeCpuWeight(1), 1u);
}

TEST_F(SessionManagerTest, SpeculativeBranchesRunAtLowerCpuWeight) {
  std::string s = NewSession();  // default policy: cpu_weight 100
  auto b = mgr_->Speculate(s, "sleep 5");
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  // The branch's real cgroup: cpu.weight on cgroup2, cpu.shares on v1.
  std::string seen;
  for (int i = 0; i < 250 && seen.empty(); ++i) {
    for (const auto& dir : SandboxCgroupDirs(*b)) {
      for (const char* file : {"/cpu.weight", "/cpu.shares"}) {
        std::ifstream in(dir + file);
        std::string v;
        if (in >> v) seen = std::string(file) + "=" + v;
      }
    }
    if (seen.empty()) std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(seen.empty()) << "no cpu controller file found for branch " << *b;
  // 25 on cgroup2; 25 * 1024 / 100 = 256 shares on v1 (the committed path: 1024).
  EXPECT_TRUE(seen == "/cpu.weight=25" || seen == "/cpu.shares=256") << seen;
  ASSERT_TRUE(mgr_->Abort(s).ok());
}

TEST_F(SessionManagerTest, HitPromotesTheBranchAndItsEffects) {
  std::string s = NewSession();
  std::string f = Scratch() + "/hit";
  std::string cmd = "mkdir -p " + Scratch() + " && echo payload > " + f + " && echo printed";
  auto b = mgr_->Speculate(s, cmd);
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  ASSERT_TRUE(mgr_->WaitBranch(*b, 60s).ok());
  auto info = mgr_->ShowBranch(*b);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, BranchState::kDone) << info->error;
  auto diff = mgr_->DiffBranch(*b);
  ASSERT_TRUE(diff.ok()) << diff.error().ToString();
  bool saw = false;
  for (const auto& c : *diff) saw = saw || (c.path == f && c.kind == ChangeKind::kAdded);
  EXPECT_TRUE(saw);
  EXPECT_FALSE(HostHas(f));  // the branch's write stayed in its upper

  // Trimming is part of the match rule.
  auto r = MustCommit(s, "  " + cmd + "\n");
  EXPECT_TRUE(r.hit);
  EXPECT_EQ(r.branch, *b);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "printed\n");
  EXPECT_FALSE(HostHas(f));
  auto head = mgr_->ShowCheckpoint(r.head);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->layers.size(), 1u);
  EXPECT_FALSE(head->has_process_image);
  auto promoted = mgr_->ShowBranch(*b);
  ASSERT_TRUE(promoted.ok());
  EXPECT_EQ(promoted->state, BranchState::kPromoted);

  auto next = MustCommit(s, "cat " + f);
  EXPECT_FALSE(next.hit);
  EXPECT_EQ(next.stdout_data, "payload\n");
  auto cps = mgr_->ListCheckpoints(s);
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->size(), 3u);
}

// DESIGN.md contract 4: a deferred syscall blocks until its branch is
// promoted. A commit's own run (the miss path) is authorised from the start:
// its deferred calls run at once instead of holding the command until its
// timeout. And a hit still running when committed is authorised for good:
// a deferred call it makes after the commit's first look runs too.
TEST_F(SessionManagerTest, DeferredSyscallsOfAnAuthorisedRunGoThrough) {
  policy::Policy p = policy::DefaultPolicy();
  p.syscalls.push_back({"mkdir", policy::SyscallAction::kDefer});
  p.syscalls.push_back({"mkdirat", policy::SyscallAction::kDefer});
  std::string s = NewSession(p);
  const std::string d = Scratch();
  auto miss = mgr_->Commit(s, "mkdir -p " + d + "/a && echo made", 20s);
  ASSERT_TRUE(miss.ok()) << miss.error().ToString();
  EXPECT_FALSE(miss->hit);
  EXPECT_EQ(miss->exit_code, 0) << miss->stderr_data;
  EXPECT_EQ(miss->stdout_data, "made\n");

  const std::string cmd = "sleep 1; mkdir " + d + "/b && sleep 1 && mkdir " + d + "/c && echo both";
  auto b = mgr_->Speculate(s, cmd);
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  auto hit = mgr_->Commit(s, cmd, 20s);
  ASSERT_TRUE(hit.ok()) << hit.error().ToString();
  EXPECT_TRUE(hit->hit);
  EXPECT_EQ(hit->exit_code, 0) << hit->stderr_data;
  EXPECT_EQ(hit->stdout_data, "both\n");
}

TEST_F(SessionManagerTest, MissDiscardsBranchesAndRunsTheRealCommand) {
  std::string s = NewSession();
  std::string f = Scratch() + "/miss";
  auto wrong = mgr_->Speculate(s, "mkdir -p " + Scratch() + "; echo wrong > " + f);
  ASSERT_TRUE(wrong.ok());
  auto r = MustCommit(s, "mkdir -p " + Scratch() + "; echo right > " + f + "; exit 3");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.exit_code, 3);
  auto w = mgr_->ShowBranch(*wrong);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->state, BranchState::kDiscarded);
  // Its teardown runs after the commit returned (the background queue).
  mgr_->WaitForDiscards();
  EXPECT_FALSE(HostHas(mgr_->store().BranchDir(*wrong)));
  EXPECT_EQ(MustCommit(s, "cat " + f).stdout_data, "right\n");
}

// Transparent speculation guesses for one head; a commit that moved the
// head meanwhile (the daemon's launch waited for it) makes the guess stale:
// it must not start from the new head.
TEST_F(SessionManagerTest, SpeculateFromAHeadThatMovedOnIsAborted) {
  std::string s = NewSession();
  auto info = mgr_->ShowSession(s);
  ASSERT_TRUE(info.ok());
  std::string root = info->record.head;
  std::string head = MustCommit(s, "echo moved").head;
  ASSERT_NE(head, root);
  auto stale = mgr_->Speculate(s, "echo guess", std::chrono::milliseconds(0), "", root);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), Code::kAborted);
  auto branches = mgr_->ListBranches(s);
  ASSERT_TRUE(branches.ok());
  for (const auto& b : *branches) EXPECT_NE(b.command, "echo guess") << "a stale guess left a branch";
  auto fresh = mgr_->Speculate(s, "echo guess", std::chrono::milliseconds(0), "", head);
  ASSERT_TRUE(fresh.ok()) << fresh.error().ToString();
  auto r = MustCommit(s, "echo guess");
  EXPECT_TRUE(r.hit);
  EXPECT_EQ(r.branch, *fresh);
}

TEST_F(SessionManagerTest, ShellStateCarriesAcrossCheckpoints) {
  std::string s = NewSession();
  MustCommit(s, "mkdir -p " + Scratch() + "/d && cd " + Scratch() +
                    "/d && export GREETING=hello && LOCALVAR=7 && alias say='echo said' && "
                    "fn() { echo \"fn $1\"; } && umask 027");
  auto b = mgr_->Speculate(s, "pwd; echo $GREETING $LOCALVAR; fn x; umask");
  ASSERT_TRUE(b.ok());
  auto r = MustCommit(s, "pwd; echo $GREETING $LOCALVAR; fn x; umask");
  EXPECT_TRUE(r.hit);
  EXPECT_EQ(r.stdout_data, Scratch() + "/d\nhello 7\nfn x\n0027\n");
  EXPECT_EQ(MustCommit(s, "shopt -s expand_aliases; say").stdout_data, "said\n");
}

TEST_F(SessionManagerTest, EightConcurrentBranchesAreIsolated) {
  policy::Policy p = policy::DefaultPolicy();
  p.speculation.max_branches_per_session = 8;
  p.speculation.max_concurrent_branches = 8;
  std::string s = NewSession(p);
  std::string f = Scratch() + "/which";
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    auto b = mgr_->Speculate(s, "mkdir -p " + Scratch() + "; echo " + std::to_string(i) + " >> " + f +
                                    "; sleep 0.2; cat " + f);
    ASSERT_TRUE(b.ok()) << b.error().ToString();
    ids.push_back(*b);
  }
  EXPECT_EQ(mgr_->Speculate(s, "true").error().code(), Code::kResourceExhausted);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(mgr_->WaitBranch(ids[i], 120s).ok());
    auto info = mgr_->ShowBranch(ids[i]);
    ASSERT_TRUE(info.ok());
    ASSERT_EQ(info->state, BranchState::kDone) << info->error;
    ASSERT_TRUE(info->result.has_value());
    // Each branch saw only its own write.
    EXPECT_EQ(info->result->stdout_data, std::to_string(i) + "\n");
  }
  auto r = MustCommit(s, "mkdir -p " + Scratch() + "; echo 5 >> " + f + "; sleep 0.2; cat " + f);
  EXPECT_TRUE(r.hit);
  EXPECT_EQ(r.branch, ids[5]);
  for (int i = 0; i < 8; ++i) {
    if (i == 5) continue;
    EXPECT_EQ(mgr_->ShowBranch(ids[i])->state, BranchState::kDiscarded);
  }
  EXPECT_EQ(MustCommit(s, "cat " + f).stdout_data, "5\n");
}

TEST_F(SessionManagerTest, DiscardKillsAndRemovesEverything) {
  std::string s = NewSession();
  auto b = mgr_->Speculate(s, "sleep 300");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 200; ++i) {
    auto info = mgr_->ShowBranch(*b);
    if (info.ok() && info->state == BranchState::kRunning) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(mgr_->DiscardBranch(*b).ok());
  // Discarded at once; the teardown runs in the background (BackgroundQueue).
  auto shown = mgr_->ShowBranch(*b);
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->state, BranchState::kDiscarded);
  EXPECT_EQ(shown->reason, "discarded: branch.discard");
  mgr_->WaitForDiscards();
  EXPECT_EQ(mgr_->ShowBranch(*b)->state, BranchState::kDiscarded);
  EXPECT_FALSE(HostHas(mgr_->store().BranchDir(*b)));
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) EXPECT_EQ(line.find(*b), std::string::npos) << line;
}

TEST_F(SessionManagerTest, ALaunchForAHeadReusesALiveBranchOfTheSameCommand) {
  std::string s = NewSession();
  auto head = mgr_->ShowSession(s);
  ASSERT_TRUE(head.ok());
  const std::string h = head->record.head;
  auto client = mgr_->Speculate(s, "sleep 30 # guessed by both");
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  // Transparent speculation's launch (from_head set) of the same command,
  // also in a form the match rule calls the same: no second branch. The
  // check and the start are one step under the session's lock.
  auto launch = mgr_->Speculate(s, "  sleep 30 # guessed by both ", 0ms, "{}", h);
  ASSERT_TRUE(launch.ok()) << launch.error().ToString();
  EXPECT_EQ(*launch, *client);
  auto other = mgr_->Speculate(s, "sleep 31", 0ms, "{}", h);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *client);
  auto info = mgr_->ShowSession(s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->live_branches, 2u);
  ASSERT_TRUE(mgr_->Abort(s).ok());
}

TEST_F(SessionManagerTest, DestroyingASessionWaitsForTheDiscardsItsCommitLeftBehind) {
  std::string s = NewSession();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto b = mgr_->Speculate(s, "sleep 300 # " + std::to_string(i));
    ASSERT_TRUE(b.ok()) << b.error().ToString();
    ids.push_back(*b);
  }
  // A miss: the three are discarded in the background while it runs.
  auto r = MustCommit(s, "echo other");
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.stdout_data, "other\n");
  for (const auto& id : ids) {
    auto info = mgr_->ShowBranch(id);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->state, BranchState::kDiscarded);
    EXPECT_EQ(info->reason, "discarded: commit of a different command");
  }
  // Four more (max_concurrent) discarded one by one (each call returns before its teardown),
  // then the session destroyed at once. No WaitForDiscards: destroy itself
  // waits before the layers go.
  std::vector<std::string> more;
  for (int i = 0; i < 4; ++i) {
    auto b = mgr_->Speculate(s, "sleep 300 # again " + std::to_string(i));
    ASSERT_TRUE(b.ok()) << b.error().ToString();
    more.push_back(*b);
  }
  for (const auto& id : more) {
    for (int i = 0; i < 500; ++i) {
      auto info = mgr_->ShowBranch(id);
      if (info.ok() && info->state == BranchState::kRunning) break;
      std::this_thread::sleep_for(20ms);
    }
  }
  for (const auto& id : more) ASSERT_TRUE(mgr_->DiscardBranch(id).ok());
  ids.insert(ids.end(), more.begin(), more.end());
  ASSERT_TRUE(mgr_->DestroySession(s).ok());
  for (const auto& id : ids) {
    EXPECT_FALSE(HostHas(mgr_->store().BranchDir(id))) << id;
    auto rec = mgr_->store().GetBranch(id);
    if (rec.ok()) {
      EXPECT_EQ(rec->state, "discarded") << id;
    }
    std::ifstream mounts("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mounts, line)) EXPECT_EQ(line.find(id), std::string::npos) << line;
  }
}

TEST_F(SessionManagerTest, LiveProcessesAreCheckpointedAndRestoredIntoBranches) {
  std::string s = NewSession();
  std::string c = Scratch() + "/counter";
  auto r = MustCommit(s, "mkdir -p " + Scratch() + "; (while :; do echo x >> " + c +
                             "; sleep 0.05; done) >/dev/null 2>&1 </dev/null &");
  ASSERT_FALSE(r.head.empty());
  auto head = mgr_->ShowCheckpoint(r.head);
  ASSERT_TRUE(head.ok());
  ASSERT_TRUE(head->has_process_image);
  EXPECT_GT(head->image_bytes, 0u);
  // Two branches restore the same image; each counter keeps growing on its own.
  auto b1 = mgr_->Speculate(s, "sleep 0.5; wc -l < " + c);
  auto b2 = mgr_->Speculate(s, "sleep 0.5; wc -l < " + c);
  ASSERT_TRUE(b1.ok() && b2.ok());
  ASSERT_TRUE(mgr_->WaitBranch(*b1, 60s).ok());
  ASSERT_TRUE(mgr_->WaitBranch(*b2, 60s).ok());
  auto i1 = mgr_->ShowBranch(*b1);
  ASSERT_EQ(i1->state, BranchState::kDone) << i1->error;
  int n1 = std::stoi(i1->result->stdout_data);
  auto r2 = MustCommit(s, "sleep 0.5; wc -l < " + c);
  EXPECT_TRUE(r2.hit);
  EXPECT_GT(n1, 3);
  // The promoted branch still has the loop: the next checkpoint has it too.
  auto h2 = mgr_->ShowCheckpoint(r2.head);
  ASSERT_TRUE(h2.ok());
  EXPECT_TRUE(h2->has_process_image);
  auto r3 = MustCommit(s, "kill %1 2>/dev/null; pkill -f 'sleep 0.05' ; kill $(jobs -p) 2>/dev/null; true");
  EXPECT_EQ(r3.exit_code, 0);
}

// Issue 16, loss 2: an action that leaves a process CRIU cannot checkpoint
// (here a connected loopback TCP socket: CRIU wants --tcp-established) lost
// the whole commit, its files included. The files are kept; the processes
// are not, and the result says so (a flag and a note with CRIU's reason).
TEST_F(SessionManagerTest, ACommitWhoseProcessesCannotBeCheckpointedKeepsItsFiles) {
  std::string s = NewSession();
  std::string f = Scratch() + "/kept";
  auto r = mgr_->Commit(s, "mkdir -p " + Scratch() + "; echo kept > " + f +
                               "; (python3 -c 'import socket, time\n"
                               "l = socket.socket(); l.bind((\"127.0.0.1\", 0)); l.listen(1)\n"
                               "c = socket.create_connection(l.getsockname()); a, _ = l.accept()\n"
                               "time.sleep(100)' &) >/dev/null 2>&1 </dev/null; sleep 0.5; echo ran");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "ran\n");
  EXPECT_NE(std::find(r->flags.begin(), r->flags.end(), "processes_not_kept"), r->flags.end());
  ASSERT_FALSE(r->promote_notes.empty());
  EXPECT_EQ(r->promote_notes.back().action, "processes not kept");
  EXPECT_NE(r->promote_notes.back().detail.find("TCP"), std::string::npos) << r->promote_notes.back().detail;
  auto head = mgr_->ShowCheckpoint(r->head);
  ASSERT_TRUE(head.ok());
  EXPECT_FALSE(head->has_process_image);
  // The next command sees the file, and no process of the last one.
  auto next = MustCommit(s, "cat " + f + "; ps -eo args | grep -c '^python3'");
  EXPECT_EQ(next.stdout_data, "kept\n0\n");
}

// Issue 16's own example of loss 2: a process that changed uid. In a user
// namespace (the default policy) host root holds every capability over the
// tree, so CRIU checkpoints it and the process lives on. Without one, CRIU's
// prlimit of another uid's process needs CAP_SYS_RESOURCE, which this VM
// lacks even in its bounding set (ENVIRONMENT.md): then the files are kept
// and the processes are not. `specula doctor`'s criu.dump_uid_changed
// probes both.
TEST_F(SessionManagerTest, ACommitLeavingAProcessThatChangedUidKeepsItsFiles) {
  std::string status;
  {
    std::ifstream in("/proc/self/status");
    std::stringstream ss;
    ss << in.rdbuf();
    status = ss.str();
  }
  auto at = status.find("CapEff:");
  ASSERT_NE(at, std::string::npos);
  bool cap_sys_resource = (std::strtoull(status.c_str() + at + 7, nullptr, 16) >> 24) & 1;
  for (bool userns : {true, false}) {
    SCOPED_TRACE(userns ? "in a user namespace" : "without a user namespace");
    policy::Policy p = policy::DefaultPolicy();
    p.sandbox.user_namespace = userns;
    std::string s = NewSession(p);
    std::string f = Scratch() + "/b";
    auto r = mgr_->Commit(s, "mkdir -p " + Scratch() + "; echo b > " + f +
                                 "; (python3 -c 'import os, time; os.setgid(1000); os.setuid(1000); "
                                 "time.sleep(100)' &) >/dev/null 2>&1 </dev/null; sleep 0.3");
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    bool kept = userns || cap_sys_resource;
    bool not_kept = std::find(r->flags.begin(), r->flags.end(), "processes_not_kept") != r->flags.end();
    EXPECT_EQ(not_kept, !kept);
    if (not_kept) {
      ASSERT_FALSE(r->promote_notes.empty());
      EXPECT_NE(r->promote_notes.back().detail.find("rlimit"), std::string::npos)
          << r->promote_notes.back().detail;
    }
    auto next = MustCommit(s, "cat " + f + "; ps -eo args | grep -c '^python3'");
    EXPECT_EQ(next.stdout_data, kept ? "b\n1\n" : "b\n0\n");
    ASSERT_TRUE(mgr_->DestroySession(s).ok());
  }
}

TEST_F(SessionManagerTest, RollbackMovesTheHeadBack) {
  std::string s = NewSession();
  std::string f = Scratch() + "/rb";
  auto first = MustCommit(s, "mkdir -p " + Scratch() + "; echo one > " + f);
  MustCommit(s, "echo two > " + f);
  MustCommit(s, "echo three > " + f);
  EXPECT_EQ(MustCommit(s, "cat " + f).stdout_data, "three\n");
  ASSERT_TRUE(mgr_->Rollback(s, first.head).ok());
  EXPECT_EQ(mgr_->ShowSession(s)->record.head, first.head);
  EXPECT_EQ(MustCommit(s, "cat " + f).stdout_data, "one\n");
  EXPECT_EQ(mgr_->Rollback(s, "cnotthere").error().code(), Code::kNotFound);
}

TEST_F(SessionManagerTest, SquashKeepsWhatCheckpointsShow) {
  mgr_.reset();
  OpenManager(/*squash_threshold=*/4);
  std::string s = NewSession();
  std::string d = Scratch() + "/sq";
  std::vector<std::string> steps = {
      "mkdir -p " + d + "/keep " + d + "/gone && echo a > " + d + "/a && echo k > " + d + "/keep/k",
      "echo b > " + d + "/b && ln " + d + "/b " + d + "/b2 && ln -s a " + d + "/link && echo c > " + d + "/c0",
      "rm -rf " + d + "/gone && rm " + d + "/a",
      "mkdir " + d + "/gone && echo new > " + d + "/gone/n && chmod 0640 " + d + "/c0 && echo c0 > " + d + "/c1",
      "echo a2 > " + d + "/a && rm -rf " + d + "/keep && mkdir " + d + "/keep",
      "echo c > " + d + "/c",
      "echo d > " + d + "/d",
  };
  std::string listing = "cd " + d + " && find . -printf '%p %y %m %n %l\\n' | sort && cat a b gone/n";
  std::vector<std::string> heads;
  for (const auto& st : steps) heads.push_back(MustCommit(s, st).head);
  auto final_view = MustCommit(s, listing);
  EXPECT_EQ(final_view.exit_code, 0) << final_view.stderr_data;
  auto head = mgr_->ShowCheckpoint(final_view.head);
  ASSERT_TRUE(head.ok());
  EXPECT_LE(head->layers.size(), 4u);
  EXPECT_NE(final_view.stdout_data.find("./b f 644 2 \n./b2 f 644 2 \n"), std::string::npos) << final_view.stdout_data;
  EXPECT_NE(final_view.stdout_data.find("./c0 f 640 1 \n"), std::string::npos) << final_view.stdout_data;
  EXPECT_EQ(final_view.stdout_data.find("./keep/k"), std::string::npos) << final_view.stdout_data;
  // An old checkpoint (from before the squash) still shows its own state.
  ASSERT_TRUE(mgr_->Rollback(s, heads[1]).ok());
  auto old_view = MustCommit(s, "cd " + d + " && ls && cat a");
  EXPECT_EQ(old_view.stdout_data, "a\nb\nb2\nc0\ngone\nkeep\nlink\na\n");
}


// A restarted manager (daemon) finds every session and checkpoint again;
// branches that were live are recorded as discarded.
TEST_F(SessionManagerTest, ReopenFindsSessionsAndCheckpoints) {
  std::string s = NewSession();
  std::string f = Scratch() + "/reopen";
  auto r = MustCommit(s, "mkdir -p " + Scratch() + " && echo kept > " + f + " && cd " + Scratch());
  auto b = mgr_->Speculate(s, "sleep 300");
  ASSERT_TRUE(b.ok());
  mgr_.reset();
  OpenManager();
  auto info = mgr_->ShowSession(s);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->record.head, r.head);
  EXPECT_EQ(mgr_->ShowBranch(*b)->state, BranchState::kDiscarded);
  EXPECT_EQ(MustCommit(s, "cat reopen; pwd").stdout_data, "kept\n" + Scratch() + "\n");
  EXPECT_EQ(mgr_->ListCheckpoints(s)->size(), 3u);
}

// Target base: promote applies onto the base (here the host's /, under a
// scratch dir only) and rollback reverts through runtime/apply.
TEST_F(SessionManagerTest, BaseTargetAppliesAndRollsBack) {
  // Not under /var: the journal lives there and apply refuses uppers that
  // would touch a directory holding it.
  std::string dir = "/srv/specula-core-scratch-" + std::to_string(::getpid());
  struct Cleanup {
    std::string d;
    ~Cleanup() { (void)RemoveTree(d); }
  } cleanup{dir};
  std::string s = NewSession(policy::DefaultPolicy(), policy::PromoteTarget::kBase);
  auto root = mgr_->ShowSession(s)->record.head;
  auto one = MustCommit(s, "mkdir -p " + dir + " && echo one > " + dir + "/f");
  ASSERT_FALSE(one.head.empty());
  std::ifstream in1(dir + "/f");
  std::string line;
  std::getline(in1, line);
  EXPECT_EQ(line, "one");  // on the host now
  auto two = MustCommit(s, "echo two > " + dir + "/f && echo extra > " + dir + "/g");
  ASSERT_FALSE(two.head.empty());
  EXPECT_TRUE(HostHas(dir + "/g"));
  // Back to `one`: g goes, f reads "one" again.
  ASSERT_TRUE(mgr_->Rollback(s, one.head).ok());
  EXPECT_FALSE(HostHas(dir + "/g"));
  std::ifstream in2(dir + "/f");
  std::getline(in2, line);
  EXPECT_EQ(line, "one");
  // A host change since the promote makes rollback refuse, changing nothing.
  std::ofstream(dir + "/f") << "changed on the host\n";
  auto rb = mgr_->Rollback(s, root);
  ASSERT_FALSE(rb.ok());
  EXPECT_EQ(rb.error().code(), Code::kFailedPrecondition) << rb.error().ToString();
  EXPECT_EQ(mgr_->ShowSession(s)->record.head, one.head);
  EXPECT_TRUE(HostHas(dir + "/f"));
}

}  // namespace
}  // namespace specula::core::testing
