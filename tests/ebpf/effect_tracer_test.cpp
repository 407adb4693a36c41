// Integration: the real effect tracer on the real kernel. Each test moves a
// gated child into a fresh cgroup2 directory, lets it act, and checks what
// arrived: the right ops, paths, results and pids, and nothing from a twin
// process doing the same outside the cgroup.
#include "ebpf/effect_tracer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "ebpf/effect_analysis.h"
#include "tests/ebpf/ebpf_test_util.h"

namespace specula::ebpf {
namespace {

using testing::GatedChild;
using testing::TestCgroup;

struct FileOpsArgs {
  char dir[256];
};

// Runs in a forked child: system calls only.
int DoFileOps(void* p) {
  const char* d = static_cast<FileOpsArgs*>(p)->dir;
  if (::chdir(d) != 0) return 10;
  int fd = ::openat(AT_FDCWD, "a.txt", O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 11;
  if (::write(fd, "x", 1) != 1) return 12;
  ::close(fd);
  fd = ::open("a.txt", O_RDONLY | O_CLOEXEC);  // read-only: not an effect
  if (fd >= 0) ::close(fd);
  if (::rename("a.txt", "b.txt") != 0) return 13;
  if (::mkdir("sub", 0700) != 0) return 14;
  if (::chmod("b.txt", 0600) != 0) return 15;
  if (::symlink("b.txt", "s.lnk") != 0) return 16;
  if (::link("b.txt", "h.txt") != 0) return 17;
  if (::truncate("h.txt", 0) != 0) return 18;
  if (::unlink("nonexistent") == 0) return 19;  // fails with ENOENT: still reported
  if (::unlink("h.txt") != 0) return 20;
  if (::rmdir("sub") != 0) return 21;
  return 0;
}

// Registers a cgroup for the scope of a test, so a failed assertion never
// leaves the shared tracer calling into a destroyed journal.
class Registered {
 public:
  Registered(EffectTracer* t, uint64_t id, EffectJournal& j) : t_(t), id_(id), ok_(t->AddCgroup(id, j.Sink()).ok()) {}
  ~Registered() {
    if (ok_) (void)t_->RemoveCgroup(id_);  // NotFound if the test removed it already
  }
  bool ok() const { return ok_; }

 private:
  EffectTracer* t_;
  uint64_t id_;
  bool ok_;
};

// Waits until pid is gone or a zombie: its exit event has been emitted.
bool WaitExited(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string MakeTempDir(const char* tag) {
  std::string tmpl = std::string("/tmp/specula-ebpf-") + tag + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

// One tracer per hook set for the whole suite, as in the daemon: loading
// takes ~0.3 s and unloading the tracepoint set seconds (an RCU grace period
// per detached tracepoint).
class EffectTracerTest : public ::testing::TestWithParam<SyscallHooks> {
 protected:
  static void TearDownTestSuite() {
    for (auto& [hooks, t] : tracers_) delete t;
    tracers_.clear();
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, cgroup writes)";
    EffectTracer*& t = tracers_[GetParam()];
    if (t == nullptr) {
      EffectTracerOptions opts;
      opts.hooks = GetParam();
      Result<std::unique_ptr<EffectTracer>> r = EffectTracer::Load(opts);
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      t = std::move(*r).release();
      for (const std::string& u : t->unavailable_programs()) std::fprintf(stderr, "unavailable: %s\n", u.c_str());
    }
    tracer_ = t;
    ASSERT_EQ(tracer_->syscall_hooks(), GetParam());
  }
  void TearDown() override {
    if (tracer_ != nullptr) tracer_->Stop();
    for (const std::string& d : dirs_) std::filesystem::remove_all(d);
  }
  std::string TempDir(const char* tag) {
    std::string d = MakeTempDir(tag);
    dirs_.push_back(d);
    return d;
  }
  std::vector<EffectEvent> Of(const std::vector<EffectEvent>& all, EffectOp op) {
    std::vector<EffectEvent> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), [&](const EffectEvent& e) { return e.op == op; });
    return out;
  }

  static std::map<SyscallHooks, EffectTracer*> tracers_;
  EffectTracer* tracer_ = nullptr;
  std::vector<std::string> dirs_;
};

std::map<SyscallHooks, EffectTracer*> EffectTracerTest::tracers_;

TEST_P(EffectTracerTest, FileEffectsArriveWithFieldsOnlyFromTracedCgroup) {
  TestCgroup cg("files");
  ASSERT_TRUE(cg.ok()) << cg.error();
  EffectJournal journal;
  Registered reg(tracer_, cg.id(), journal);
  ASSERT_TRUE(reg.ok());
  ASSERT_TRUE(tracer_->Start().ok());

  FileOpsArgs in{}, out{};
  std::string din = TempDir("in"), dout = TempDir("out");
  ASSERT_FALSE(din.empty() || dout.empty());
  std::snprintf(in.dir, sizeof(in.dir), "%s", din.c_str());
  std::snprintf(out.dir, sizeof(out.dir), "%s", dout.c_str());

  GatedChild inside(DoFileOps, &in);
  GatedChild outside(DoFileOps, &out);  // same actions, not in the cgroup
  ASSERT_GT(inside.pid(), 0);
  ASSERT_GT(outside.pid(), 0);
  ASSERT_TRUE(cg.Move(inside.pid()));
  ASSERT_TRUE(inside.Release());
  ASSERT_TRUE(outside.Release());
  ASSERT_EQ(inside.Wait(), 0);
  ASSERT_EQ(outside.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  tracer_->Stop();

  std::vector<EffectEvent> ev = journal.Snapshot();
  for (const EffectEvent& e : ev) {
    SCOPED_TRACE(e.ToString());
    EXPECT_EQ(e.tgid, inside.pid());  // nothing from the twin outside
    EXPECT_EQ(e.cgroup_id, cg.id());
    EXPECT_EQ(e.traced_cgroup_id, cg.id());
    EXPECT_GT(e.time_ns, 0u);
  }

  auto opens = Of(ev, EffectOp::kOpen);
  ASSERT_EQ(opens.size(), 1u) << "the read-only open must not be reported";
  EXPECT_EQ(opens[0].path, "a.txt");
  EXPECT_EQ(opens[0].fd, AT_FDCWD);
  EXPECT_TRUE(opens[0].flags & O_CREAT);
  EXPECT_EQ(opens[0].mode, 0644u);
  EXPECT_GE(opens[0].result, 0);
  EXPECT_EQ(opens[0].pid, inside.pid());

  auto renames = Of(ev, EffectOp::kRename);
  ASSERT_EQ(renames.size(), 1u);
  EXPECT_EQ(renames[0].path, "a.txt");
  EXPECT_EQ(renames[0].path2, "b.txt");
  EXPECT_EQ(renames[0].result, 0);

  auto mkdirs = Of(ev, EffectOp::kMkdir);
  ASSERT_EQ(mkdirs.size(), 1u);
  EXPECT_EQ(mkdirs[0].path, "sub");
  EXPECT_EQ(mkdirs[0].mode, 0700u);

  auto chmods = Of(ev, EffectOp::kChmod);
  ASSERT_EQ(chmods.size(), 1u);
  EXPECT_EQ(chmods[0].path, "b.txt");
  EXPECT_EQ(chmods[0].mode, 0600u);

  auto symlinks = Of(ev, EffectOp::kSymlink);
  ASSERT_EQ(symlinks.size(), 1u);
  EXPECT_EQ(symlinks[0].path, "b.txt");
  EXPECT_EQ(symlinks[0].path2, "s.lnk");

  auto links = Of(ev, EffectOp::kLink);
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].path2, "h.txt");

  auto truncs = Of(ev, EffectOp::kTruncate);
  ASSERT_EQ(truncs.size(), 1u);
  EXPECT_EQ(truncs[0].path, "h.txt");

  auto unlinks = Of(ev, EffectOp::kUnlink);
  ASSERT_EQ(unlinks.size(), 2u);
  EXPECT_EQ(unlinks[0].path, "nonexistent");
  EXPECT_EQ(unlinks[0].result, -ENOENT);
  EXPECT_EQ(unlinks[1].path, "h.txt");
  EXPECT_EQ(unlinks[1].result, 0);

  auto rmdirs = Of(ev, EffectOp::kRmdir);
  ASSERT_EQ(rmdirs.size(), 1u);
  EXPECT_EQ(rmdirs[0].path, "sub");

  // The child was moved in after it was forked: its exit is seen, no fork.
  auto exits = Of(ev, EffectOp::kExit);
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].tgid, inside.pid());
  EXPECT_TRUE(Of(ev, EffectOp::kFork).empty());

  Result<EffectTracer::CgroupStats> st = tracer_->Stats(cg.id());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->emitted, ev.size());
  EXPECT_EQ(st->dropped, 0u);
  EXPECT_EQ(tracer_->unmatched_events(), 0u) << "the kernel emitted events for an untraced cgroup";
  EXPECT_TRUE(tracer_->RemoveCgroup(cg.id()).ok());
}

struct ExecArgs {
  const char* program;  // exec'd by a grandchild
  bool leave_running;   // the grandchild outlives the child
};

int ForkExec(void* p) {
  auto* a = static_cast<ExecArgs*>(p);
  char* const no_args[] = {nullptr};
  if (::execve("/nonexistent/program", no_args, no_args) == 0) return 30;
  pid_t g = ::fork();
  if (g < 0) return 31;
  if (g == 0) {
    char* const argv[] = {const_cast<char*>(a->program), const_cast<char*>(a->leave_running ? "1000" : nullptr),
                          nullptr};
    ::execv(a->program, argv);
    ::_exit(127);
  }
  if (a->leave_running) return 0;
  int status = 0;
  if (::waitpid(g, &status, 0) != g || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 32;
  return 0;
}

TEST_P(EffectTracerTest, ExecForkExitAccountingAndCheckpointDecision) {
  TestCgroup cg("exec");
  ASSERT_TRUE(cg.ok()) << cg.error();
  EffectJournal journal;
  Registered reg(tracer_, cg.id(), journal);
  ASSERT_TRUE(reg.ok());
  ASSERT_TRUE(tracer_->ProcessAccountingAvailable());

  ExecArgs args{"/bin/true", false};
  GatedChild child(ForkExec, &args);
  ASSERT_TRUE(cg.Move(child.pid()));
  ASSERT_TRUE(child.Release());
  ASSERT_EQ(child.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  std::vector<EffectEvent> ev = journal.Take();

  auto execs = Of(ev, EffectOp::kExec);
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0].path, "/nonexistent/program");
  EXPECT_EQ(execs[0].result, -ENOENT);
  EXPECT_EQ(execs[0].tgid, child.pid());
  EXPECT_EQ(execs[1].path, "/bin/true");
  EXPECT_EQ(execs[1].result, 0);
  auto forks = Of(ev, EffectOp::kFork);
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_EQ(forks[0].tgid, child.pid());
  EXPECT_EQ(execs[1].tgid, forks[0].child_tgid());
  EXPECT_EQ(Of(ev, EffectOp::kExit).size(), 2u);
  EXPECT_FALSE(LeftLiveProcesses(ev));
  CheckpointPlan plan = DecideCheckpoint({ev, tracer_->Complete(cg.id()), false});
  EXPECT_FALSE(plan.criu_dump) << plan.reason;

  // Now a grandchild that stays: the action leaves a live process behind.
  ExecArgs stay{"/bin/sleep", true};
  GatedChild child2(ForkExec, &stay);
  ASSERT_TRUE(cg.Move(child2.pid()));
  ASSERT_TRUE(child2.Release());
  ASSERT_EQ(child2.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  ev = journal.Take();
  std::vector<pid_t> left = ProcessesLeftRunning(ev);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(::kill(left[0], 0), 0) << "the reported process should be alive";
  plan = DecideCheckpoint({ev, tracer_->Complete(cg.id()), false});
  EXPECT_TRUE(plan.criu_dump);
  EXPECT_NE(plan.reason.find(std::to_string(left[0])), std::string::npos) << plan.reason;
  ::kill(left[0], SIGKILL);
  EXPECT_TRUE(WaitExited(left[0]));
  ASSERT_TRUE(tracer_->Drain().ok());
  ev = journal.Take();
  ASSERT_EQ(Of(ev, EffectOp::kExit).size(), 1u);
  EXPECT_EQ(Of(ev, EffectOp::kExit)[0].tgid, left[0]);
  EXPECT_EQ(Of(ev, EffectOp::kExit)[0].result & 0x7f, SIGKILL) << "exit carries the wait status";
  EXPECT_TRUE(tracer_->RemoveCgroup(cg.id()).ok());
}

struct NetArgs {
  uint16_t port;
};

int ConnectAndRandom(void* p) {
  auto* a = static_cast<NetArgs*>(p);
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 40;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(a->port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) return 41;
  char buf[4];
  if (::recvfrom(s, buf, sizeof(buf), 0, nullptr, nullptr) != 2) return 42;
  ::close(s);
  if (::getrandom(buf, sizeof(buf), 0) != sizeof(buf)) return 43;
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 44;
  ::close(fd);
  return 0;
}

TEST_P(EffectTracerTest, ConnectRecvAndRandomnessAreReported) {
  TestCgroup cg("net");
  ASSERT_TRUE(cg.ok()) << cg.error();
  EffectJournal journal;
  Registered reg(tracer_, cg.id(), journal);
  ASSERT_TRUE(reg.ok());

  UniqueFd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(ls.valid());
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(ls.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  ASSERT_EQ(::listen(ls.get(), 4), 0);
  socklen_t len = sizeof(sin);
  ASSERT_EQ(::getsockname(ls.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
  NetArgs args{ntohs(sin.sin_port)};

  GatedChild child(ConnectAndRandom, &args);
  ASSERT_TRUE(cg.Move(child.pid()));
  ASSERT_TRUE(child.Release());
  UniqueFd conn(::accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn.valid());
  ASSERT_EQ(::write(conn.get(), "hi", 2), 2);
  ASSERT_EQ(child.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  std::vector<EffectEvent> ev = journal.Snapshot();

  auto connects = Of(ev, EffectOp::kConnect);
  ASSERT_EQ(connects.size(), 1u);
  EXPECT_EQ(connects[0].result, 0);
  EXPECT_EQ(connects[0].addr.family, AF_INET);
  EXPECT_EQ(connects[0].addr.port, args.port);
  EXPECT_EQ(connects[0].addr.ToString(), "127.0.0.1:" + std::to_string(args.port));
  EXPECT_TRUE(connects[0].addr.IsLoopback());
  auto recvs = Of(ev, EffectOp::kRecv);
  ASSERT_EQ(recvs.size(), 1u);
  EXPECT_EQ(recvs[0].result, 2);
  EXPECT_EQ(recvs[0].socket_family(), AF_INET);
  auto rnd = Of(ev, EffectOp::kGetrandom);
  ASSERT_EQ(rnd.size(), 1u);
  EXPECT_EQ(rnd[0].result, 4);
  auto dev = Of(ev, EffectOp::kOpenRandom);
  ASSERT_EQ(dev.size(), 1u);
  EXPECT_EQ(dev[0].path, "/dev/urandom");
  EXPECT_TRUE(ReadNondeterministicInput(ev));
  EXPECT_TRUE(tracer_->RemoveCgroup(cg.id()).ok());
}

TEST_P(EffectTracerTest, DescendantCgroupsAttributedAndRemovalStopsTracing) {
  TestCgroup cg("parent");
  ASSERT_TRUE(cg.ok()) << cg.error();
  TestCgroup sub("child", &cg);
  ASSERT_TRUE(sub.ok()) << sub.error();
  EffectJournal journal;
  Registered reg(tracer_, cg.id(), journal);
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(tracer_->AddCgroup(cg.id(), journal.Sink()).error().code(), Code::kAlreadyExists);

  FileOpsArgs a{};
  std::string d = TempDir("sub");
  std::snprintf(a.dir, sizeof(a.dir), "%s", d.c_str());
  GatedChild child(DoFileOps, &a);
  ASSERT_TRUE(sub.Move(child.pid()));
  ASSERT_TRUE(child.Release());
  ASSERT_EQ(child.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  std::vector<EffectEvent> ev = journal.Take();
  ASSERT_FALSE(ev.empty());
  for (const EffectEvent& e : ev) {
    EXPECT_EQ(e.cgroup_id, sub.id());
    EXPECT_EQ(e.traced_cgroup_id, cg.id());
  }
  EXPECT_EQ(Of(ev, EffectOp::kRename).size(), 1u);

  ASSERT_TRUE(tracer_->RemoveCgroup(cg.id()).ok());
  EXPECT_EQ(tracer_->RemoveCgroup(cg.id()).error().code(), Code::kNotFound);
  std::string d2 = TempDir("after");
  std::snprintf(a.dir, sizeof(a.dir), "%s", d2.c_str());
  GatedChild after(DoFileOps, &a);
  ASSERT_TRUE(sub.Move(after.pid()));
  ASSERT_TRUE(after.Release());
  ASSERT_EQ(after.Wait(), 0);
  ASSERT_TRUE(tracer_->Drain().ok());
  EXPECT_EQ(journal.size(), 0u);
  EXPECT_EQ(tracer_->unmatched_events(), 0u);
}

struct RenameArgs {
  char dir[256];
};

int ManyRenames(void* p) {
  if (::chdir(static_cast<RenameArgs*>(p)->dir) != 0) return 60;
  int fd = ::open("x", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return 61;
  ::close(fd);
  for (int i = 0; i < 200; ++i) {
    if (::rename((i % 2) != 0 ? "y" : "x", (i % 2) != 0 ? "x" : "y") != 0) return 62;
  }
  return 0;
}

// A full ring buffer drops events; the drops are counted for the cgroup and
// make the checkpoint decision fall back to a CRIU dump.
TEST(EffectTracerDrops, OverflowIsCountedAndMakesTheTraceIncomplete) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  EffectTracerOptions opts;
  opts.hooks = SyscallHooks::kRawTracepoints;  // fast to unload
  opts.ring_bytes = 64 * 1024;                 // ~30 events
  Result<std::unique_ptr<EffectTracer>> t = EffectTracer::Load(opts);
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  TestCgroup cg("drops");
  ASSERT_TRUE(cg.ok()) << cg.error();
  EffectJournal journal;
  Registered reg(t->get(), cg.id(), journal);
  ASSERT_TRUE(reg.ok());
  RenameArgs a{};
  std::string d = MakeTempDir("drops");
  ASSERT_FALSE(d.empty());
  std::snprintf(a.dir, sizeof(a.dir), "%s", d.c_str());
  GatedChild child(ManyRenames, &a);  // no consumer running: nothing frees the ring
  ASSERT_TRUE(cg.Move(child.pid()));
  ASSERT_TRUE(child.Release());
  EXPECT_EQ(child.Wait(), 0);
  ASSERT_TRUE((*t)->Drain().ok());
  std::filesystem::remove_all(d);
  Result<EffectTracer::CgroupStats> st = (*t)->Stats(cg.id());
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->dropped, 0u);
  EXPECT_EQ(st->emitted, journal.size());
  EXPECT_LT(journal.size(), 200u);
  EXPECT_FALSE((*t)->Complete(cg.id()));
  std::vector<EffectEvent> ev = journal.Snapshot();
  EXPECT_TRUE(DecideCheckpoint({ev, (*t)->Complete(cg.id()), false}).criu_dump);
}

TEST(EffectTracerOptionsTest, RejectsBadSizes) {
  EffectTracerOptions opts;
  opts.ring_bytes = 100000;
  Result<std::unique_ptr<EffectTracer>> t = EffectTracer::Load(opts);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), Code::kInvalidArgument);
  opts = {};
  opts.path_max = 0;
  t = EffectTracer::Load(opts);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), Code::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Hooks, EffectTracerTest,
                         ::testing::Values(SyscallHooks::kTracepoints, SyscallHooks::kRawTracepoints),
                         [](const ::testing::TestParamInfo<SyscallHooks>& p) {
                           return p.param == SyscallHooks::kTracepoints ? "Tracepoints" : "RawTracepoints";
                         });

}  // namespace
}  // namespace specula::ebpf
