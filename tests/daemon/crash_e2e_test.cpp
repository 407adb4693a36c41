// kill -9 of the real speculad at each stage of a commit, then a restart on
// the same state dir (issue 5, item 4): nothing committed is lost, nothing
// uncommitted shows, and nothing is left behind (sandbox processes, CRIU,
// mounts, cgroups, branch dirs, unrecorded CRIU images or layers).
//
// The moments are chosen with SPECULA_CRASH_AT (common/crash_point.h): the
// daemon SIGKILLs itself at the named point, which is what `kill -9` at that
// instant does, without the race of aiming a kill from outside. A running
// action is killed from outside (it lasts long enough to aim at), and the
// promote to the base uses the apply journal's counted point apply.step:<N>.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

Json ParseOut(const SpawnResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  return j;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename());
  return out;
}

// CRIU processes working on `state_dir` (an orphaned dump would be one).
std::vector<pid_t> CriuProcessesFor(const std::string& state_dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e.path().filename().c_str()));
    if (pid <= 1) continue;
    std::ifstream in(e.path() / "cmdline");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmd = ss.str();
    if (cmd.find("criu") != std::string::npos && cmd.find(state_dir + "/") != std::string::npos) out.push_back(pid);
  }
  return out;
}

// Every daemon's sandboxes are under specula/i-<hash of its state dir>/
// in each hierarchy (sandbox/sandbox_watch.h); older ones under specula/.
std::vector<std::string> CgroupParents() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& hier : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    std::string top = hier.path().string() + "/specula";
    if (!fs::is_directory(top, ec)) continue;
    out.push_back(top);
    for (const auto& inst : fs::directory_iterator(top, ec)) {
      if (inst.path().filename().string().rfind("i-", 0) == 0) out.push_back(inst.path().string());
    }
  }
  return out;
}

// cgroup directories named for `branch` anywhere under /sys/fs/cgroup.
std::vector<std::string> CgroupsOf(const std::string& branch) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& parent : CgroupParents()) {
    std::string dir = parent + "/specula-" + branch;
    if (fs::exists(dir, ec)) out.push_back(dir);
  }
  return out;
}

// The instance directories (specula/i-*) that hold `branch`'s cgroups.
std::vector<std::string> InstanceDirsOf(const std::string& branch) {
  std::vector<std::string> out;
  for (const auto& dir : CgroupsOf(branch)) {
    std::string parent = fs::path(dir).parent_path().string();
    if (fs::path(parent).filename().string().rfind("i-", 0) == 0) out.push_back(parent);
  }
  return out;
}

// Waits (up to 30 s) until none of `dirs` exists; returns those left.
std::vector<std::string> WaitGone(const std::vector<std::string>& dirs) {
  std::vector<std::string> left = dirs;
  for (int i = 0; i < 300 && !left.empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    std::erase_if(left, [](const std::string& d) { return !fs::exists(d); });
  }
  return left;
}

class CrashE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    scratch_ = "/srv/specula-crash-e2e-" + std::to_string(::getpid());
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }

  // The first daemon of a test keeps the warm pool, so crash recovery must
  // clean a crashed pool's sandboxes too; the ones started after it run
  // without: their own pool's branch dir and subvolume would be
  // indistinguishable, in ExpectNothingLeftBehind, from a crash's leftovers.
  void Start(const std::vector<std::string>& env = {}) {
    std::vector<std::string> extra;
    if (started_) extra = {"--pool-per-session", "0"};
    started_ = true;
    auto d = Daemon::Start(dir_.path(), extra, "d", env);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
  }
  SpawnResult Cli(std::vector<std::string> args) { return RunCli(daemon_->socket(), std::move(args)); }

  std::string CreateSession(const std::string& name, const std::string& target = "layer") {
    auto r = Cli({"--json", "session", "create", "--name", name, "--target", target});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseOut(r)["session"];
  }
  std::string Head(const std::string& s) { return ParseOut(Cli({"--json", "session", "show", s}))["head"]; }
  Json Log(const std::string& s) { return ParseOut(Cli({"--json", "log", s})); }
  std::vector<std::string> BranchIds(const std::string& s) {
    std::vector<std::string> ids;
    for (const auto& b : ParseOut(Cli({"--json", "branches", s}))) ids.push_back(b["branch"]);
    return ids;
  }

  // Runs `command` as a commit on a connection of its own; the daemon is
  // expected to die during it (a crash point), so the CLI's answer is
  // whatever a dropped connection gives. Returns the daemon's wait status.
  int CommitUntilTheDaemonDies(const std::string& s, const std::string& command) {
    SpawnResult run = Cli({"run", s, "--", command});  // returns when the connection drops
    auto status = daemon_->WaitExit(seconds(30));
    EXPECT_TRUE(status.has_value()) << "speculad did not reach its crash point:\n" << daemon_->Log();
    EXPECT_NE(run.exit_code, 0) << "the commit answered although the daemon died: " << run.out;
    return status.value_or(0);
  }

  // What a restarted daemon must have cleaned: run after the restart.
  void ExpectNothingLeftBehind(const std::string& s, const std::vector<std::string>& branches) {
    std::string state = daemon_->state_dir();
    EXPECT_TRUE(SandboxProcessesUsing(dir_.path()).empty()) << "sandbox processes outlived the crash";
    EXPECT_TRUE(CriuProcessesFor(state).empty()) << "a CRIU of the dead daemon still runs";
    for (const auto& b : branches) EXPECT_TRUE(CgroupsOf(b).empty()) << "cgroup of " << b << " left";
    EXPECT_TRUE(Entries(state + "/fs/branches").empty()) << "branch dirs left";
    for (const auto& m : MountsUnder(state)) {
      EXPECT_TRUE(m == state + "/fs" || m == state + "/criu-run") << "mount left: " << m;
    }
    // Every CRIU image and layer on disk belongs to a recorded checkpoint.
    Json log = Log(s);
    std::set<std::string> with_image;
    int64_t head_layers = 0;
    std::string head = Head(s);
    for (const auto& c : log) {
      if (c["has_process_image"] == true) with_image.insert(c["checkpoint"].get<std::string>());
      if (c["checkpoint"] == head) head_layers = c["layers"].get<int64_t>();
    }
    for (const auto& img : Entries(state + "/images")) {
      EXPECT_TRUE(with_image.count(img)) << "unrecorded CRIU image " << img;
    }
    // A linear history without squash: one layer per commit, all in use.
    EXPECT_EQ(static_cast<int64_t>(Entries(state + "/fs/layers").size()), head_layers);
    ExpectOnlyLayerSubvolumes(state, head_layers);
  }

  // On a btrfs store: the subvolumes left are the layers', and once the
  // kernel has freed the deleted ones, so are the quota groups (none of a
  // crashed branch piles up).
  void ExpectOnlyLayerSubvolumes(const std::string& state, int64_t layers) {
    std::string mnt = state + "/fs";
    auto listed = Spawn({.argv = {"btrfs", "subvolume", "list", "-o", mnt}});
    if (!listed.ok() || !listed->success()) return;  // an ext4 store (SPECULA_STORE_FS=ext4): nothing to check
    const SpawnResult& list = *listed;
    int64_t subvolumes = 0;
    std::istringstream lines(list.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      ++subvolumes;
      EXPECT_NE(line.find(" path layers/"), std::string::npos) << "a subvolume outside layers/: " << line;
    }
    EXPECT_EQ(subvolumes, layers);
    int64_t qgroups = -1;
    for (int i = 0; i < 300 && qgroups != layers; ++i) {
      (void)Spawn({.argv = {"btrfs", "filesystem", "sync", mnt}});
      auto q = Spawn({.argv = {"btrfs", "qgroup", "show", mnt}});
      qgroups = 0;
      std::istringstream ql(q.ok() ? q->out : "");
      for (std::string line; std::getline(ql, line);) {
        if (line.rfind("0/", 0) == 0 && line.rfind("0/5 ", 0) != 0) ++qgroups;
      }
      if (qgroups != layers) std::this_thread::sleep_for(milliseconds(100));
    }
    EXPECT_EQ(qgroups, layers) << "qgroups of deleted subvolumes left";
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  bool started_ = false;
  std::string scratch_;
};

// The action of a commit is running when the daemon dies: its writes never
// show, and the head stays where it was.
TEST_F(CrashE2E, Kill9WhileACommitRuns) {
  Start();
  std::string s = CreateSession("running");
  ASSERT_EQ(Cli({"run", s, "--", "echo kept > /kept"}).exit_code, 0);
  std::string head = Head(s);
  SpawnResult run;
  std::thread t([&] { run = Cli({"run", s, "--", "echo lost > /lost; sleep 60"}); });
  // Aim at the running action: its sandbox exists and has written.
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    for (const auto& b : ParseOut(Cli({"--json", "branches", s}))) running |= b["state"] == "running";
  }
  ASSERT_TRUE(running);
  std::this_thread::sleep_for(milliseconds(300));
  auto branches = BranchIds(s);
  daemon_->Kill9();
  t.join();
  EXPECT_NE(run.exit_code, 0);
  Start();
  EXPECT_EQ(Head(s), head);
  EXPECT_EQ(Log(s).size(), 2u);
  auto lost = Cli({"run", s, "--", "cat /lost"});
  EXPECT_NE(lost.exit_code, 0) << "an uncommitted write survived: " << lost.out;
  auto kept = Cli({"run", s, "--", "cat /kept"});
  EXPECT_EQ(kept.out, "kept\n") << kept.err;
  ExpectNothingLeftBehind(s, branches);
}

struct CheckpointCrash {
  const char* point;
  const char* command;
  bool committed;  // the head moved before the crash
};

class CheckpointCrashE2E : public CrashE2E, public ::testing::WithParamInterface<CheckpointCrash> {};

// The daemon dies while checkpointing a commit's result: mid-CRIU-dump with
// the tree frozen, after the images are written, after the layer is sealed,
// or just after the head is recorded. Before the head is recorded the commit
// did not happen; after, it did, although its client never heard.
TEST_P(CheckpointCrashE2E, Kill9DuringCheckpoint) {
  const CheckpointCrash& c = GetParam();
  Start();
  std::string s = CreateSession("ckpt");
  ASSERT_EQ(Cli({"run", s, "--", "echo kept > /kept"}).exit_code, 0);
  std::string head = Head(s);
  daemon_->Kill9();  // restart armed (a Kill9 with nothing in flight is a clean crash)
  Start({std::string("SPECULA_CRASH_AT=") + c.point});
  int status = CommitUntilTheDaemonDies(s, c.command);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "wait status " << status;
  // The log before the restart says where it died (CRIU's action script
  // kills it from outside, without a word).
  if (std::string(c.point) != "criu.post-dump") {
    EXPECT_NE(daemon_->Log().find(std::string("crash point ") + c.point), std::string::npos);
  }
  Start();
  auto branches = BranchIds(s);
  auto marker = Cli({"run", s, "--", "cat /marker"});
  if (c.committed) {
    EXPECT_NE(Head(s), head);
    EXPECT_EQ(marker.out, "m\n") << "a recorded commit was lost: " << marker.err;
  } else {
    EXPECT_NE(marker.exit_code, 0) << "an unrecorded commit shows: " << marker.out;
  }
  EXPECT_EQ(Cli({"run", s, "--", "cat /kept"}).out, "kept\n");
  ExpectNothingLeftBehind(s, branches);
}

// Commands that leave a live process make the checkpoint take a CRIU dump.
constexpr const char* kLive = "echo m > /marker; sleep 300 >/dev/null 2>&1 </dev/null &";
constexpr const char* kFilesOnly = "echo m > /marker";

INSTANTIATE_TEST_SUITE_P(
    Points, CheckpointCrashE2E,
    ::testing::Values(CheckpointCrash{"criu.post-dump", kLive, false},
                      CheckpointCrash{"checkpoint.after-dump", kLive, false},
                      CheckpointCrash{"checkpoint.before-head", kFilesOnly, false},
                      CheckpointCrash{"checkpoint.after-head", kFilesOnly, true},
                      CheckpointCrash{"checkpoint.after-head", kLive, true},
                      // The branch volume (a btrfs subvolume) and its seal.
                      CheckpointCrash{"volume.after-create", kFilesOnly, false},
                      CheckpointCrash{"seal.between-renames", kFilesOnly, false},
                      CheckpointCrash{"seal.after-rename", kFilesOnly, false}),
    [](const ::testing::TestParamInfo<CheckpointCrash>& i) {
      std::string n = i.param.point;
      for (char& ch : n) {
        if (ch == '.' || ch == '-') ch = '_';
      }
      return n + (i.param.command == kLive ? "_live" : "_files");
    });

// A promote to the base (the host's files) interrupted at every step of the
// apply journal: after the restart the host is exactly as before that commit
// (its checkpoint never reached the database), the head has not moved, and
// the session goes on. The last iteration runs without a crash and shows
// the commit on the host.
TEST_F(CrashE2E, Kill9DuringPromoteToBaseAtEveryStep) {
  Start();
  std::string s = CreateSession("base", "base");
  ASSERT_EQ(Cli({"run", s, "--", "mkdir -p " + scratch_ + " && echo old > " + scratch_ + "/a"}).exit_code, 0);
  const std::string command = "echo new > " + scratch_ + "/a && echo added > " + scratch_ + "/b";
  std::string head = Head(s);
  bool completed = false;
  int steps = 0;
  for (int step = 1; step <= 60 && !completed; ++step) {
    daemon_->Kill9();
    Start({"SPECULA_CRASH_AT=apply.step:" + std::to_string(step)});
    SpawnResult run = Cli({"run", s, "--", command});  // returns when the connection drops
    if (run.exit_code == 0) {  // no crash: the apply has fewer steps than this
      ASSERT_TRUE(daemon_->Alive());
      completed = true;
      break;
    }
    auto status = daemon_->WaitExit(seconds(30));
    ASSERT_TRUE(status.has_value()) << "step " << step << ": commit failed, daemon alive: " << run.err;
    ++steps;
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 99) << "step " << step << ": " << *status;
    Start();
    EXPECT_EQ(Head(s), head) << "step " << step;
    std::ifstream a(scratch_ + "/a");
    std::string line;
    std::getline(a, line);
    EXPECT_EQ(line, "old") << "step " << step;
    EXPECT_FALSE(fs::exists(scratch_ + "/b")) << "step " << step;
    // The first commit's journal stays (it serves rollback); this one's went.
    EXPECT_EQ(Entries(daemon_->state_dir() + "/journal").size(), 1u) << "step " << step;
  }
  ASSERT_TRUE(completed);
  EXPECT_GT(steps, 2);
  EXPECT_NE(Head(s), head);
  std::ifstream b(scratch_ + "/b");
  std::string line;
  std::getline(b, line);
  EXPECT_EQ(line, "added");
}

// A rollback of a base-target session undoes each promote on the host, one
// checkpoint at a time, then moves the head. Killed in between (right after
// the revert, or at any step of the revert itself), the restarted daemon
// must leave the head saying what the host holds.
TEST_F(CrashE2E, Kill9DuringRollbackOfTheBaseKeepsHeadAndHostTogether) {
  Start();
  std::string s = CreateSession("rollback", "base");
  const std::string f = scratch_ + "/f";
  ASSERT_EQ(Cli({"run", s, "--", "mkdir -p " + scratch_ + " && echo one > " + f}).exit_code, 0);
  std::string one = Head(s);
  auto read_f = [&] {
    std::ifstream in(f);
    std::string line;
    std::getline(in, line);
    return line;
  };
  // SPECULA_CRASH_AT first (between revert and head), then every step of
  // the revert journal; each round starts from a fresh second commit.
  std::vector<std::vector<std::string>> crashes{{"SPECULA_CRASH_AT=rollback.after-revert"}};
  for (int step = 1; step <= 40; ++step) crashes.push_back({"SPECULA_CRASH_AT=apply.step:" + std::to_string(step)});
  bool completed = false;
  for (const auto& env : crashes) {
    if (Head(s) != one) {
      ASSERT_EQ(Cli({"rollback", s, one}).exit_code, 0);
    }
    ASSERT_EQ(Cli({"run", s, "--", "echo two > " + f}).exit_code, 0);
    std::string two = Head(s);
    ASSERT_EQ(read_f(), "two");
    daemon_->Kill9();
    Start(env);
    SpawnResult rb = Cli({"rollback", s, one});
    if (rb.exit_code == 0) {  // the revert has fewer steps than this: done
      completed = true;
      EXPECT_EQ(Head(s), one);
      EXPECT_EQ(read_f(), "one");
      break;
    }
    ASSERT_TRUE(daemon_->WaitExit(seconds(30)).has_value()) << env[0] << ": rollback failed, daemon alive: " << rb.err;
    Start();
    std::string head = Head(s);
    std::string host = read_f();
    // Either the rollback happened (on the host and in the head) or not at all.
    EXPECT_TRUE((head == one && host == "one") || (head == two && host == "two"))
        << env[0] << ": head " << (head == one ? "one" : head == two ? "two" : head) << ", host has " << host;
    // And the session goes on from there.
    auto next = Cli({"run", s, "--", "cat " + f});
    EXPECT_EQ(next.out, host + "\n") << env[0];
  }
  EXPECT_TRUE(completed);
}

// Resources: a daemon gives back its cgroup subtree in every hierarchy
// when it stops and when it is killed with nobody restarting it (its
// sandbox watch removes it once the sandboxes are dead). Before, every
// daemon ever run left an empty specula/i-<hash> behind in each hierarchy.
TEST_F(CrashE2E, NeitherAStoppedNorAKilledDaemonLeavesCgroupDirectories) {
  for (bool kill : {false, true}) {
    SCOPED_TRACE(kill ? "kill -9" : "SIGTERM");
    Start();
    std::string s = CreateSession(kill ? "killed" : "stopped");
    ASSERT_EQ(Cli({"run", s, "--", "(sleep 600 &); true"}).exit_code, 0);
    SpawnResult spec = Cli({"spec", s, "--", "sleep 600"});
    ASSERT_EQ(spec.exit_code, 0) << spec.err;
    std::string branch = spec.out.substr(0, spec.out.find('\n'));
    std::vector<std::string> instance;
    for (int i = 0; i < 100 && instance.empty(); ++i) {
      std::this_thread::sleep_for(milliseconds(50));
      instance = InstanceDirsOf(branch);
    }
    ASSERT_FALSE(instance.empty()) << "the speculated branch " << branch << " has no cgroup under specula/i-*";
    if (kill) {
      daemon_->Kill9();
    } else {
      EXPECT_EQ(daemon_->Terminate(), 0) << daemon_->Log();
    }
    EXPECT_EQ(WaitGone(instance), std::vector<std::string>{}) << "cgroup directories left behind";
    EXPECT_TRUE(SandboxProcessesUsing(dir_.path()).empty());
    daemon_.reset();
  }
}

// Issue 16: SIGTERM stops a running commit instead of waiting for it (the
// grace time is 30 s, the command would take 120 s): the client gets
// unavailable, nothing of the action is kept, and the restarted daemon has
// the session with its head where it was.
TEST_F(CrashE2E, SigtermStopsARunningCommitAndKeepsNothingOfIt) {
  Start();
  std::string s = CreateSession("stopping");
  ASSERT_EQ(Cli({"run", s, "--", "echo kept > /kept-term"}).exit_code, 0);
  std::string head = Head(s);
  SpawnResult run;
  std::thread t([&] { run = Cli({"--json", "run", s, "--", "echo lost > /lost-term; sleep 120; echo late > /late"}); });
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    for (const auto& b : ParseOut(Cli({"--json", "branches", s}))) running |= b["state"] == "running";
  }
  ASSERT_TRUE(running);
  std::this_thread::sleep_for(milliseconds(300));  // it has written /lost-term
  auto branches = BranchIds(s);
  // Within the default grace (30 s), far less than the command's 120 s.
  EXPECT_EQ(daemon_->Terminate(seconds(25)), 0) << "speculad waited for the commit:\n" << daemon_->Log();
  t.join();
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.out.find("unavailable"), std::string::npos) << run.out << run.err;
  Start();
  EXPECT_EQ(Head(s), head);
  auto lost = Cli({"run", s, "--", "cat /lost-term"});
  EXPECT_NE(lost.exit_code, 0) << "a stopped commit's write survived: " << lost.out;
  EXPECT_EQ(Cli({"run", s, "--", "cat /kept-term"}).out, "kept\n");
  ExpectNothingLeftBehind(s, branches);
}

}  // namespace
}  // namespace specula::testing
