// CRIU driver against a real namespaced process tree: a pid+mount namespace
// with an overlay root entered by pivot_root (as ENVIRONMENT.md describes),
// dumped, then restored into a second overlay over the same lower.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/files.h"
#include "common/spawn.h"
#include "runtime/criu/criu_driver.h"

namespace specula::criu {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts `unshare` building the sandbox; returns the host pid of the
// namespace's init once its root is pivoted and the workload runs.
class NamespacedTree {
 public:
  explicit NamespacedTree(std::string dir) : dir_(std::move(dir)) {}
  ~NamespacedTree() { Stop(); }

  pid_t Start() {
    for (const char* d : {"/upper", "/work", "/merged"}) EXPECT_TRUE(MakeDirs(dir_ + d).ok());
    std::string script =
        "set -e; mount --make-rprivate /; "
        "mount -t overlay overlay -o lowerdir=/,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work " + dir_ +
        "/merged; cd " + dir_ + "/merged; mount -t proc proc proc; mount -t tmpfs tmpfs dev; "
        "touch dev/null; mount --bind /dev/null dev/null; mkdir -p .old; pivot_root . .old; "
        "umount -l /.old; rmdir /.old; cd /; echo ready > /ready; "
        "exec setsid bash -c 'n=0; while :; do n=$((n+1)); echo $n > /counter; sleep 0.05; done' "
        "</dev/null >/dev/null 2>&1";
    unshare_ = ::fork();
    if (unshare_ == 0) {
      int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      ::dup2(fd, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      // Nothing inherited from the test runner (ctest keeps its log open as
      // fd 3): CRIU cannot dump an fd that points outside the tree's mounts.
      ::syscall(SYS_close_range, 3, ~0U, 0);
      ::execlp("unshare", "unshare", "--pid", "--mount", "--uts", "--ipc", "--fork", "bash", "-c",
               script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200 && ::access((dir_ + "/upper/ready").c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    std::string children = ReadFile("/proc/" + std::to_string(unshare_) + "/task/" +
                                    std::to_string(unshare_) + "/children");
    init_ = std::atoi(children.c_str());
    return init_;
  }

  void Stop() {
    if (init_ > 0) ::kill(init_, SIGKILL);
    if (unshare_ > 0) {
      ::kill(unshare_, SIGKILL);
      ::waitpid(unshare_, nullptr, 0);
      unshare_ = -1;
    }
    init_ = -1;
  }

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  pid_t unshare_ = -1;
  pid_t init_ = -1;
};

class CriuDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/specula-criu-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    ASSERT_TRUE(RemoveTree(dir_).ok());
  }
  std::string dir_;
  std::vector<std::string> mounts_;
};

TEST_F(CriuDriverTest, RejectsBadRequests) {
  auto d = CriuDriver::Create(CriuOptions{});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ((*d)->Dump(DumpRequest{1, dir_ + "/img", {}, false}).error().code(), Code::kInvalidArgument);
  EXPECT_EQ((*d)->Dump(DumpRequest{1234, "relative", {}, false}).error().code(), Code::kInvalidArgument);
  RestoreRequest r;
  r.image_dir = "x";
  EXPECT_EQ((*d)->Restore(r).error().code(), Code::kInvalidArgument);
}

TEST_F(CriuDriverTest, FailedDumpQuotesCriuLog) {
  auto d = CriuDriver::Create(CriuOptions{});
  ASSERT_TRUE(d.ok());
  // A pid that does not exist: CRIU fails and says why in its log.
  auto r = (*d)->Dump(DumpRequest{4000000, dir_ + "/img", {}, false});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("criu dump of pid 4000000 failed"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().hint().find("dump.log"), std::string::npos);
  // What CRIU refuses is about the processes and the kernel, not a bug of
  // the runtime: never `internal` (docs/error-model.md).
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
}

TEST_F(CriuDriverTest, KernelFeatureCacheLivesInTheDriversOwnRunWhateverTheHostsIs) {
  CriuOptions opts;
  opts.kdat_dir = dir_ + "/kdat";
  auto d = CriuDriver::Create(opts);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_FALSE((*d)->KernelFeaturesCached());  // a fresh tmpfs
  auto said = (*d)->Check();
  ASSERT_TRUE(said.ok()) << said.error().ToString();
  EXPECT_NE(said->find("Looks good"), std::string::npos) << *said;
  EXPECT_TRUE((*d)->KernelFeaturesCached());
  // Without a tmpfs of its own, nothing is cached by the driver.
  auto bare = CriuDriver::Create(CriuOptions{});
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE((*bare)->KernelFeaturesCached());
}

TEST_F(CriuDriverTest, DumpsNamespacedTreeAndRestoresTwoIndependentCopies) {
  CriuOptions opts;
  opts.kdat_dir = dir_ + "/kdat";
  auto d = CriuDriver::Create(opts);
  ASSERT_TRUE(d.ok()) << d.error().ToString();

  NamespacedTree tree(dir_ + "/t");
  pid_t init = tree.Start();
  ASSERT_GT(init, 1);
  // The workload is running once it has counted: read until it has (the
  // writer truncates before it writes, and a loaded machine may not have
  // scheduled it yet: a single read after 200 ms saw an empty file in CI).
  int before = 0;
  for (int t = 0; t < 200 && before <= 0; ++t) {
    std::this_thread::sleep_for(50ms);
    before = std::atoi(ReadFile(tree.dir() + "/upper/counter").c_str());
  }
  ASSERT_GT(before, 0);

  auto dump = (*d)->Dump(DumpRequest{init, dir_ + "/img", {{"/dev/null", "dnull"}}, false});
  ASSERT_TRUE(dump.ok()) << dump.error().ToString();
  EXPECT_GT(dump->image_bytes, 0u);
  EXPECT_EQ(::access((dir_ + "/img/dump.log").c_str(), F_OK), 0);
  // Without --leave-running CRIU kills the dumped tree.
  std::this_thread::sleep_for(100ms);
  EXPECT_NE(::kill(init, 0), 0);
  int at_dump = std::atoi(ReadFile(tree.dir() + "/upper/counter").c_str());
  tree.Stop();

  std::vector<pid_t> restored;
  for (int i = 0; i < 2; ++i) {
    std::string b = dir_ + "/r" + std::to_string(i);
    ASSERT_TRUE(MakeDirs(b + "/work").ok());
    ASSERT_TRUE(MakeDirs(b + "/merged").ok());
    // The branch's upper starts as a copy of the dumped tree's upper.
    auto cp = Spawn(SpawnOptions{{"cp", "-a", tree.dir() + "/upper", b + "/upper"}});
    ASSERT_TRUE(cp.ok() && cp->success());
    std::string opt = "lowerdir=/,upperdir=" + b + "/upper,workdir=" + b + "/work";
    ASSERT_EQ(::mount("overlay", (b + "/merged").c_str(), "overlay", 0, opt.c_str()), 0) << strerror(errno);
    mounts_.push_back(b + "/merged");
    RestoreRequest rr;
    rr.image_dir = dir_ + "/img";
    rr.work_dir = b + "/criu";
    rr.root = b + "/merged";
    rr.external_mounts = {{"dnull", "/dev/null"}};
    auto res = (*d)->Restore(rr);
    ASSERT_TRUE(res.ok()) << res.error().ToString();
    restored.push_back(res->pid);
  }
  for (int i = 0; i < 2; ++i) {
    // Each copy counts on from the dumped value, in its own upper only. The
    // writer truncates before it writes (`echo > /counter`), and a loaded
    // machine may take a while to schedule it: read until it has moved on.
    int now = 0;
    for (int t = 0; t < 200 && now <= at_dump; ++t) {
      std::this_thread::sleep_for(50ms);
      now = std::atoi(ReadFile(dir_ + "/r" + std::to_string(i) + "/upper/counter").c_str());
    }
    EXPECT_GT(now, at_dump) << "copy " << i;
    EXPECT_EQ(::kill(restored[i], 0), 0);
  }
  EXPECT_EQ(std::atoi(ReadFile(tree.dir() + "/upper/counter").c_str()), at_dump);
  for (pid_t p : restored) ::kill(p, SIGKILL);
  for (pid_t p : restored) {
    for (int i = 0; i < 100 && ::kill(p, 0) == 0; ++i) std::this_thread::sleep_for(10ms);
  }
}

}  // namespace
}  // namespace specula::criu
