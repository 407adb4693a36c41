// Every corpus trajectory runs for real with bash in a fresh work dir and
// every step exits and prints exactly as recorded. (Two trajectories start a
// loopback HTTP server on fixed ports 18741/18742; they stop it themselves.)
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "agents/local_environment.h"
#include "agents/trajectory.h"

namespace specula::agents {
namespace {

TEST(CorpusTest, EveryTrajectoryRunsAsRecorded) {
  auto corpus = LoadCorpus(DefaultCorpusDir());
  ASSERT_TRUE(corpus.ok()) << corpus.error().ToString();
  std::string root = "/tmp/specula-corpus-test-" + std::to_string(::getpid());
  for (auto& t : *corpus) {
    std::string dir = root + "/" + t.name;
    std::filesystem::create_directories(dir);
    LocalSequentialEnvironment env(LocalEnvironmentOptions{dir, {}, 1 << 20});
    auto mismatches = ReplayAgainst(t, env, /*record=*/false);
    ASSERT_TRUE(mismatches.ok()) << mismatches.error().ToString();
    for (const auto& m : *mismatches) ADD_FAILURE() << m;
    std::filesystem::remove_all(dir);
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace specula::agents
