// `specula mount`: a checkpoint's files as a read-only view on the host,
// built by the one overlay module (sandbox/overlay.h) from the checkpoint's
// layers over the base. Each view shows exactly its checkpoint, refuses
// writes, and `specula umount` removes it (and nothing else).
//
// Through the real speculad and CLI; runs as root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

namespace fs = std::filesystem;

Json ParseOut(const SpawnResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  return j;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? ss.str() : "<missing>";
}

class CheckpointMount : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    // Over the host's / (actions need a shell), writing below a scratch
    // directory that exists on the host.
    scratch_ = "/srv/specula-mount-test-" + std::to_string(::getpid());
    fs::create_directories(scratch_);
    std::ofstream(scratch_ + "/conf") << "base\n";
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
    auto r = Cli({"--json", "session", "create", "--name", "views"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    session_ = ParseOut(r)["session"];
  }
  void TearDown() override {
    for (const auto& m : mounted_) (void)Cli({"umount", m});
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }
  SpawnResult Cli(std::vector<std::string> args) { return RunCli(daemon_->socket(), std::move(args)); }
  // Checkpoint ids by their number of layers (0: the session's root).
  std::map<int64_t, std::string> ByLayers() {
    std::map<int64_t, std::string> out;
    for (const auto& c : ParseOut(Cli({"--json", "log", session_}))) {
      out[c["layers"].get<int64_t>()] = c["checkpoint"].get<std::string>();
    }
    return out;
  }
  std::string Mount(const std::string& checkpoint) {
    std::string dir = dir_.path() + "/view-" + checkpoint;
    fs::create_directories(dir);
    auto r = Cli({"mount", checkpoint, dir});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code == 0) mounted_.push_back(dir);
    return dir;
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::string scratch_, session_;
  std::vector<std::string> mounted_;
};

TEST_F(CheckpointMount, EachViewShowsItsCheckpointReadOnlyAndUmountRemovesIt) {
  const std::string& s = scratch_;
  ASSERT_EQ(Cli({"run", session_, "--", "echo one > " + s + "/conf; echo a > " + s + "/a"}).exit_code, 0);
  ASSERT_EQ(Cli({"run", session_, "--", "echo two > " + s + "/conf; rm " + s + "/a; mkdir -p " + s + "/d; echo b > " + s + "/d/b"}).exit_code, 0);
  auto cps = ByLayers();
  ASSERT_EQ(cps.size(), 3u);

  std::string root = Mount(cps[0]), first = Mount(cps[1]), second = Mount(cps[2]);
  EXPECT_EQ(Slurp(root + s + "/conf"), "base\n");
  EXPECT_FALSE(fs::exists(root + s + "/a"));
  EXPECT_EQ(Slurp(first + s + "/conf"), "one\n");
  EXPECT_EQ(Slurp(first + s + "/a"), "a\n");
  EXPECT_EQ(Slurp(second + s + "/conf"), "two\n");
  EXPECT_FALSE(fs::exists(second + s + "/a")) << "a deletion in a later layer shows through";
  EXPECT_EQ(Slurp(second + s + "/d/b"), "b\n");
  // The session's target is layers: the host's files are untouched.
  EXPECT_EQ(Slurp(s + "/conf"), "base\n");
  EXPECT_FALSE(fs::exists(s + "/d"));

  // Read-only, and no setuid/device meaning (nosuid, nodev).
  int fd = ::open((second + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) ::close(fd);

  std::string mountinfo = Slurp("/proc/self/mountinfo");
  EXPECT_NE(mountinfo.find(" " + second + " "), std::string::npos);
  auto um = Cli({"umount", second});
  EXPECT_EQ(um.exit_code, 0) << um.err;
  mounted_.pop_back();
  mountinfo = Slurp("/proc/self/mountinfo");
  EXPECT_EQ(mountinfo.find(" " + second + " "), std::string::npos) << "the view is still mounted";
  EXPECT_NE(mountinfo.find(" " + first + " "), std::string::npos) << "umount took another view with it";
  // umount of a directory that is not a view is refused.
  auto not_view = Cli({"umount", scratch_});
  EXPECT_NE(not_view.exit_code, 0);
}

}  // namespace
}  // namespace specula::testing
