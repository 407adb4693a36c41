// `specula bench` end to end on a few trajectories with the local TEST
// environments: every run completes, is lossless, and the JSON has the
// fields the report promises.
#include "agents/bench.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

namespace specula::agents {
namespace {

TEST(BenchTest, RunsOffAndOnAndChecksLosslessness) {
  if (::geteuid() != 0) GTEST_SKIP() << "the speculative test environment needs root";
  BenchOptions o;
  o.json = true;
  o.time_scale = 0.02;
  o.ks = {1, 2};
  o.oracle_p = {1.0, 0.0};
  o.only = {"config-ini-port-change", "build-c-fix-failing-test"};
  o.work_root = "/tmp/specula-bench-test-" + std::to_string(::getpid());
  o.make_environment = LocalTestEnvironmentFactory();
  std::ostringstream out, progress;
  o.progress = &progress;
  ASSERT_FALSE(std::filesystem::exists(o.work_root));
  int status = BenchCommand(o, out);
  // The bench made its work root, so it removes it (it used to leave an
  // empty /tmp/specula-bench behind).
  bool left = std::filesystem::exists(o.work_root);
  std::filesystem::remove_all(o.work_root);
  EXPECT_FALSE(left) << o.work_root << " left behind";
  EXPECT_EQ(status, 0) << progress.str();
  auto j = nlohmann::json::parse(out.str(), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out.str();
  ASSERT_EQ(j["trajectories"].size(), 2u);
  // off + builtin k=1,2 + builtin k=3 launch-all + oracle p=1 k=1,2 + oracle p=0 k=1,2
  ASSERT_EQ(j["overall"].size(), 8u);
  for (const auto& t : j["trajectories"]) {
    for (const auto& r : t["runs"]) {
      ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
      if (r["config"] != "off") {
        EXPECT_TRUE(r["lossless"].get<bool>()) << r.dump();
      }
      for (const char* f : {"total_ms", "saving_pct", "hit_rate", "branches", "wasted_branch_s"}) {
        EXPECT_TRUE(r.contains(f)) << f;
      }
    }
  }
  for (const auto& o_row : j["overall"]) {
    std::string c = o_row["config"];
    if (c.find("oracle p=1.00") == 0) {
      EXPECT_GT(o_row["hits"].get<int>(), 0) << c;
    }
    if (c.find("oracle p=0.00") == 0) {
      EXPECT_EQ(o_row["hits"].get<int>(), 0) << c;
      EXPECT_GT(o_row["branches"].get<int>(), 0) << c;  // the overhead bound is really exercised
    }
  }
  EXPECT_NE(progress.str().find("[2/2]"), std::string::npos);
}

}  // namespace
}  // namespace specula::agents
