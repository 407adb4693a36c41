// The local environments on the real machine: sequential bash runs, and the
// copy-based speculative TEST environment (root: unshare + bind mount).
#include "agents/local_environment.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace specula::agents {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class LocalEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/specula-localenv-test-" + std::to_string(::getpid()) + "/w";
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(fs::path(dir_).parent_path()); }
  std::string Read(const std::string& rel) {
    std::ifstream in(dir_ + "/" + rel);
    std::string s;
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) s.append(buf, static_cast<size_t>(in.gcount()));
    return s;
  }
  std::string dir_;
};

TEST_F(LocalEnvTest, SequentialRunsInTheWorkDirWithW) {
  LocalSequentialEnvironment env(LocalEnvironmentOptions{dir_, {"EXTRA=1"}, 1 << 20});
  EXPECT_FALSE(env.SupportsSpeculation());
  EXPECT_FALSE(env.Speculate("true", 1s).ok());
  auto c = env.Commit("echo \"$W\" > where && pwd && echo $EXTRA && echo err >&2 && exit 3", 10s);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->hit);
  EXPECT_EQ(c->outcome.exit_code, 3);
  EXPECT_EQ(c->outcome.stdout_text, dir_ + "\n1\n");
  EXPECT_EQ(c->outcome.stderr_text, "err\n");
  EXPECT_EQ(Read("where"), dir_ + "\n");
  auto t = env.Commit("sleep 5", 200ms);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->outcome.exit_code, 124);
}

TEST_F(LocalEnvTest, SpeculativeBranchesAreIsolatedUntilPromoted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (unshare --mount, mount --bind)";
  SpeculativeLocalEnvironment env(LocalEnvironmentOptions{dir_, {}, 1 << 20});
  ASSERT_TRUE(env.Commit("echo base > f", 10s).ok());
  auto hit = env.Speculate("echo hit >> f && cat f && echo \"$W\"", 10s);
  auto miss = env.Speculate("rm f && echo gone > g", 10s);
  ASSERT_TRUE(hit.ok()) << hit.error().ToString();
  ASSERT_TRUE(miss.ok());
  // Wait for both; the committed work dir is untouched meanwhile.
  for (auto id : {*hit, *miss}) {
    for (int i = 0; i < 500; ++i) {
      auto p = env.PeekBranch(id);
      ASSERT_TRUE(p.ok()) << p.error().ToString();
      if (p->has_value()) break;
      std::this_thread::sleep_for(10ms);
    }
  }
  auto peek = env.PeekBranch(*hit);
  ASSERT_TRUE(peek.ok() && peek->has_value());
  // The branch sees the work dir at the same path.
  EXPECT_EQ((*peek)->stdout_text, "base\nhit\n" + dir_ + "\n");
  EXPECT_EQ(Read("f"), "base\n");
  EXPECT_FALSE(fs::exists(dir_ + "/g"));

  auto c = env.Commit("  echo hit >> f && cat f && echo \"$W\"\n", 10s);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_TRUE(c->hit);
  EXPECT_EQ(c->branch, *hit);
  EXPECT_TRUE(c->outcome.SameObservable(**peek));
  EXPECT_EQ(Read("f"), "base\nhit\n");
  EXPECT_FALSE(fs::exists(dir_ + "/g"));  // the other branch was discarded
  EXPECT_FALSE(env.PeekBranch(*miss).ok());
  EXPECT_FALSE(fs::exists(dir_ + ".branches"));

  // A miss discards (and kills) a slow branch and runs the command itself.
  auto slow = env.Speculate("sleep 30; echo late > late", 60s);
  ASSERT_TRUE(slow.ok());
  auto m = env.Commit("echo other > o", 10s);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->hit);
  EXPECT_EQ(Read("o"), "other\n");
  EXPECT_FALSE(fs::exists(dir_ + "/late"));
}

TEST_F(LocalEnvTest, RefusesToSpeculateBackgroundProcesses) {
  EXPECT_FALSE(SpeculativeLocalEnvironment::CanSpeculate("sleep 1 & echo x"));
  EXPECT_FALSE(SpeculativeLocalEnvironment::CanSpeculate("nohup srv"));
  EXPECT_FALSE(SpeculativeLocalEnvironment::CanSpeculate("kill $(cat srv.pid)"));
  EXPECT_FALSE(SpeculativeLocalEnvironment::CanSpeculate("curl -s http://127.0.0.1:18741/"));
  EXPECT_TRUE(SpeculativeLocalEnvironment::CanSpeculate("a && b 2>&1 >/dev/null &>x"));
  SpeculativeLocalEnvironment env(LocalEnvironmentOptions{dir_, {}, 1 << 20});
  auto r = env.Speculate("sleep 1 &", 1s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace specula::agents
