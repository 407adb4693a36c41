// Issue 16 item 1: the sandbox's `/` must carry the base root's mode and
// owner. The overlay's root takes its attributes from the upper dir (and a
// checkpoint view's from its topmost layer); an upper made 0700 locked every
// non-root user out of the whole tree (`sudo -u`, `su -` failed with EACCES),
// and a `chmod` of `/` by one action was lost by the next.
//
// Through the real speculad and CLI; runs as root.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

Json ParseOut(const SpawnResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  return j;
}

std::string Octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%o", static_cast<unsigned>(m & 07777));
  return buf;
}

class RootMode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    ASSERT_EQ(::stat("/", &base_root_), 0);
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
    auto r = Cli({"--json", "session", "create", "--name", "rootmode"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    session_ = ParseOut(r)["session"];
  }
  void TearDown() override {
    for (const auto& m : mounted_) (void)Cli({"umount", m});
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }
  SpawnResult Cli(std::vector<std::string> args) { return RunCli(daemon_->socket(), std::move(args)); }
  Json Commit(const std::string& command) { return ParseOut(Cli({"--json", "run", session_, "--", command})); }
  std::string Head() { return ParseOut(Cli({"--json", "session", "show", session_}))["head"]; }
  // Mounts `checkpoint` with `specula mount` and returns the mode of its `/`.
  std::string ViewMode(const std::string& checkpoint) {
    std::string dir = dir_.path() + "/view-" + checkpoint;
    std::filesystem::create_directories(dir);
    auto r = Cli({"mount", checkpoint, dir});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return "";
    mounted_.push_back(dir);
    struct stat st {};
    EXPECT_EQ(::stat(dir.c_str(), &st), 0);
    return Octal(st.st_mode);
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::string session_;
  struct stat base_root_ {};
  std::vector<std::string> mounted_;
};

TEST_F(RootMode, TheSandboxRootHasTheBaseRootsModeAndOwner) {
  Json st = Commit("stat -c '%a %u:%g' /");
  ASSERT_EQ(st["exit_code"], 0) << st.dump();
  EXPECT_EQ(st["stdout"], Octal(base_root_.st_mode) + " " + std::to_string(base_root_.st_uid) + ":" +
                              std::to_string(base_root_.st_gid) + "\n");
  // And in a speculated branch forked from a checkpoint with a layer.
  ASSERT_EQ(Cli({"spec", session_, "--", "stat -c %a /"}).exit_code, 0);
  Json hit = Commit("stat -c %a /");
  EXPECT_EQ(hit["hit"], true) << hit.dump();
  EXPECT_EQ(hit["stdout"], Octal(base_root_.st_mode) + "\n");
}

TEST_F(RootMode, ANonRootUserCanRunPrograms) {
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  Json r = Commit("setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c 'cd / && ls /usr >/dev/null && echo ran as $(id -u)'");
  EXPECT_EQ(r["exit_code"], 0) << r.dump();
  EXPECT_EQ(r["stdout"], "ran as 65534\n") << r.dump();
  // Again from a checkpoint whose topmost layer sets the root's attributes.
  ASSERT_EQ(Commit("touch /tmp/layered")["exit_code"], 0);
  Json again = Commit("setpriv --reuid=65534 --regid=65534 --clear-groups true");
  EXPECT_EQ(again["exit_code"], 0) << again.dump();
}

TEST_F(RootMode, AChmodOfTheRootPersistsLikeAnyOtherChange) {
  ASSERT_EQ(Commit("touch /tmp/first")["exit_code"], 0);
  std::string before_chmod = Head();
  ASSERT_EQ(Commit("chmod 751 /")["exit_code"], 0);
  std::string after_chmod = Head();
  Json next = Commit("stat -c %a /");
  EXPECT_EQ(next["stdout"], "751\n") << "the chmod of / was lost by the next action";
  Json later = Commit("touch /tmp/later && stat -c %a /");
  EXPECT_EQ(later["stdout"], "751\n");
  // Checkpoint views show each checkpoint's own root.
  EXPECT_EQ(ViewMode(before_chmod), Octal(base_root_.st_mode));
  EXPECT_EQ(ViewMode(after_chmod), "751");
  EXPECT_EQ(ViewMode(Head()), "751");
  // Rolling back to before the chmod brings the base's mode back.
  ASSERT_EQ(Cli({"rollback", session_, before_chmod}).exit_code, 0);
  Json back = Commit("stat -c %a /");
  EXPECT_EQ(back["stdout"], Octal(base_root_.st_mode) + "\n");
}

}  // namespace
}  // namespace specula::testing
