// The doctor's kernel probes against the real kernel (root): each feature
// ENVIRONMENT.md says works here must probe ok, and the probes must leave
// nothing behind on the host.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/child_report.h"
#include "runtime/doctor/child_probe.h"
#include "runtime/doctor/kernel_probes.h"
#include "sandbox/userns.h"

namespace specula::doctor {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr milliseconds kTimeout{2000};

// A private parent for the probes' scratch dirs, removed even on failure.
class ScratchParent : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/specula-doctor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  bool Empty() const { return fs::is_empty(dir_); }
  std::string dir_;
};

TEST(ChildProbeTest, ReturningMeansOk) {
  Status st = RunInChild("noop", [](int, const void*) {}, nullptr, kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(ChildProbeTest, ChildFailBecomesAnErrorWithStepAndErrno) {
  Status st = RunInChild(
      "probe", [](int fd, const void*) { ChildFail(fd, "the step", EACCES); }, nullptr, kTimeout);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kPermissionDenied);
  EXPECT_EQ(st.error().sys_errno(), EACCES);
  EXPECT_NE(st.error().message().find("probe: the step"), std::string::npos)
      << st.error().message();
}

TEST(ChildProbeTest, NonZeroExitWithoutReportIsAnError) {
  Status st = RunInChild("probe", [](int, const void*) { ::_exit(3); }, nullptr, kTimeout);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("status 3"), std::string::npos) << st.error().message();
}

// A hanging probe and the grandchild it forked are both killed at the timeout.
TEST(ChildProbeTest, TimeoutKillsTheProbeAndItsGrandchildren) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  auto start = std::chrono::steady_clock::now();
  Status st = RunInChild(
      "hang",
      [](int, const void* arg) {
        int wfd = *static_cast<const int*>(arg);
        pid_t gc = ::fork();
        if (gc == 0) {
          pid_t me = ::getpid();
          (void)!::write(wfd, &me, sizeof(me));
          ::pause();
          ::_exit(0);
        }
        ::pause();
      },
      &p[1], milliseconds(300));
  auto took = std::chrono::steady_clock::now() - start;
  ::close(p[1]);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kDeadlineExceeded);
  EXPECT_LT(took, std::chrono::seconds(5));  // it did end: not a speed assertion
  pid_t gc = 0;
  ASSERT_EQ(::read(p[0], &gc, sizeof(gc)), static_cast<ssize_t>(sizeof(gc)));
  ::close(p[0]);
  // Reparented to init, which reaps it: gone, or a zombie, within a moment.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(gc) + "/stat");
    std::string pid_s, comm, state;
    gone = !(stat >> pid_s >> comm >> state) || state == "Z";
    if (!gone) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << gc << " survived the timeout";
}

class NamespaceProbeTest : public ::testing::TestWithParam<NamespaceKind> {};

TEST_P(NamespaceProbeTest, UnsharesAndUsesIt) {
  Status st = ProbeNamespace(GetParam(), kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

INSTANTIATE_TEST_SUITE_P(AllSix, NamespaceProbeTest, ::testing::ValuesIn(kAllNamespaces),
                         [](const auto& p) { return std::string(NamespaceName(p.param)); });

TEST(NamespaceHostTest, UtsProbeLeavesTheHostNameAlone) {
  char before[256] = {}, after[256] = {};
  ASSERT_EQ(::gethostname(before, sizeof(before)), 0);
  ASSERT_TRUE(ProbeNamespace(NamespaceKind::kUts, kTimeout).ok());
  ASSERT_EQ(::gethostname(after, sizeof(after)), 0);
  EXPECT_STREQ(before, after);
}

using OverlayProbeTest = ScratchParent;

TEST_F(OverlayProbeTest, MountsAnOverlayAndLeavesNothing) {
  Status st = ProbeOverlay(dir_, kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(Empty()) << "the probe's scratch dir was left in " << dir_;
}

TEST_F(OverlayProbeTest, MissingScratchParentIsNotFound) {
  Status st = ProbeOverlay(dir_ + "/does-not-exist", kTimeout);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kNotFound) << st.ToString();
}

// The user namespace every sandbox of the default policy gets, and the
// idmapped overlay its root is built from (docs/sandbox.md "User namespace").
static_assert(kProbeHostIdBase == sandbox::kDefaultHostIdBase && kProbeIdCount == sandbox::kDefaultIdCount,
              "the doctor must probe the id range sandboxes map");

TEST(UsernsProbeTest, CreatesTheSandboxesIdRange) {
  Status st = ProbeUserNamespace(kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

using IdmappedOverlayProbeTest = ScratchParent;

TEST_F(IdmappedOverlayProbeTest, MountsAnOverlayOnIdmappedLayersAndLeavesNothing) {
  Status st = ProbeIdmappedOverlay(dir_, kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(Empty()) << "the probe's scratch dir was left in " << dir_;
}

TEST_F(IdmappedOverlayProbeTest, MissingScratchParentIsNotFound) {
  Status st = ProbeIdmappedOverlay(dir_ + "/does-not-exist", kTimeout);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kNotFound) << st.ToString();
}

using PivotRootProbeTest = ScratchParent;

TEST_F(PivotRootProbeTest, PivotsInAPrivateNamespaceAndLeavesNothing) {
  Status st = ProbePivotRoot(dir_, kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(Empty());
  // Our own root is untouched.
  EXPECT_TRUE(fs::exists("/proc/self"));
}

TEST(SeccompProbeTest, FilterApplies) {
  Status st = ProbeSeccompFilter(kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(SeccompProbeTest, UserNotificationIsReceivedAndAnswered) {
  Status st = ProbeSeccompUserNotif(kTimeout);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(SeccompProbeTest, ProbesDoNotFilterTheCaller) {
  ASSERT_TRUE(ProbeSeccompFilter(kTimeout).ok());
  EXPECT_GT(::getppid(), 0);  // -1 (EXDEV) if the filter had leaked to us
}

}  // namespace
}  // namespace specula::doctor
