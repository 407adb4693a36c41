// `criu.dump_uid_changed` (issue 16, loss 2): a real dump of a tree with a
// process that changed uid, its answer against what this machine's
// capabilities say, and what it reports for a CRIU that refuses or accepts
// (a stand-in script only for that: the real one answers what this host
// allows). Every run leaves none of the probe's processes behind.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/paths.h"
#include "runtime/doctor/checks.h"
#include "runtime/doctor/kernel_probes.h"

namespace specula::doctor {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Live processes of the probe's uids whose command is this test binary's:
// its forked (never exec'd) trees, the only such processes on this machine.
// Without a user namespace the child is 65534; in one, the root and the
// child are host ids kProbeHostIdBase and kProbeHostIdBase + 1000. Zombies
// are dead already (this VM's init reaps them lazily).
int ProbeProcesses() {
  std::string self = Slurp("/proc/self/comm");
  int n = 0;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string dir = std::string("/proc/") + e->d_name;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) continue;
    if (st.st_uid != 65534 && st.st_uid != kProbeHostIdBase && st.st_uid != kProbeHostIdBase + 1000) continue;
    if (Slurp(dir + "/comm") != self) continue;
    std::string stat = Slurp(dir + "/stat");
    auto paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    ++n;
  }
  ::closedir(d);
  return n;
}

// SIGKILL takes a moment to land.
bool NoProbeProcessesLeft() {
  for (int i = 0; i < 100; ++i) {
    if (ProbeProcesses() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool HaveCapSysResource() {
  std::string status = Slurp("/proc/self/status");
  auto at = status.find("CapEff:");
  if (at == std::string::npos) return false;
  unsigned long long caps = std::strtoull(status.c_str() + at + 7, nullptr, 16);
  return (caps >> 24) & 1;  // CAP_SYS_RESOURCE
}

class CriuDumpProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (setuid, criu dump)";
    char tmpl[] = "/tmp/specula-dump-probe-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    opts_.scratch_dir = dir_;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  // A CRIU stand-in: a real version and check, and for dump the given body.
  std::string FakeCriu(const std::string& dump_body) {
    std::string path = dir_ + "/criu";
    std::ofstream(path) << "#!/bin/sh\n"
                           "case \"$1\" in\n"
                           "  --version) echo 'Version: 4.2.1' ;;\n"
                           "  check) echo 'Looks good.' ;;\n"
                           "  dump) while [ \"$1\" != -D ]; do shift; done; D=$2\n"
                        << dump_body << " ;;\n"
                        << "esac\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }
  std::string dir_;
  DoctorOptions opts_;
};

TEST_F(CriuDumpProbeTest, TheRealCriuAnswersWhatThisMachinesCapabilitiesAllow) {
  DoctorCheck c = UidChangedDumpCheck(opts_, CriuPath(), /*usable=*/true);
  EXPECT_EQ(c.name, "criu.dump_uid_changed");
  EXPECT_FALSE(c.required);
  // In a user namespace host root has every capability over the tree.
  EXPECT_EQ(c.status, CheckStatus::kOk) << c.reason;
  if (HaveCapSysResource()) {
    EXPECT_NE(c.reason.find("with and without a user namespace"), std::string::npos) << c.reason;
  } else {
    // ENVIRONMENT.md: no CAP_SYS_RESOURCE here, and CRIU's prlimit of
    // another uid's process outside a user namespace is refused without it.
    EXPECT_NE(c.reason.find("Can't get rlimit"), std::string::npos) << c.reason;
    EXPECT_NE(c.reason.find("processes_not_kept"), std::string::npos) << c.reason;
  }
  EXPECT_TRUE(NoProbeProcessesLeft());
  EXPECT_TRUE(std::filesystem::is_empty(dir_)) << "the probe's image dir was left in " << dir_;
}

TEST_F(CriuDumpProbeTest, ACriuThatRefusesIsQuotedFromItsLog) {
  std::string criu = FakeCriu(
      "echo '(00.01) Error (criu/cr-dump.c:389): Cannot dump: the probe refused' > \"$D/dump.log\"; exit 1");
  DoctorCheck c = UidChangedDumpCheck(opts_, criu, /*usable=*/true);
  EXPECT_EQ(c.status, CheckStatus::kDegraded);
  EXPECT_NE(c.reason.find("the probe refused"), std::string::npos) << c.reason;
  EXPECT_TRUE(NoProbeProcessesLeft()) << "the tree outlived a failed dump";
}

// A CRIU that "dumps" without killing the tree: the probe still ends it.
TEST_F(CriuDumpProbeTest, ACriuThatDumpsIsOkAndTheTreeIsEnded) {
  std::string criu = FakeCriu("exit 0");
  DoctorCheck c = UidChangedDumpCheck(opts_, criu, /*usable=*/true);
  EXPECT_EQ(c.status, CheckStatus::kOk) << c.reason;
  EXPECT_TRUE(NoProbeProcessesLeft());
  // The probe's image dir is removed; only the stand-in script remains.
  int left = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) left += e.path().filename() != "criu";
  EXPECT_EQ(left, 0);
}

TEST_F(CriuDumpProbeTest, NoUsableCriuIsDegradedWithoutRunningAnything) {
  DoctorCheck c = UidChangedDumpCheck(opts_, "/nonexistent/criu", /*usable=*/false);
  EXPECT_EQ(c.status, CheckStatus::kDegraded);
  EXPECT_NE(c.reason.find("no usable CRIU"), std::string::npos);
}

}  // namespace
}  // namespace specula::doctor
