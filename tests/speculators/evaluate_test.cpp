// Evaluation: hit@k, per source, read-only share, reliability, misses; and
// the task-level splits (a task never on both sides, replay runs held out).
#include "speculators/evaluate.h"

#include <gtest/gtest.h>

#include "speculators/dataset.h"

namespace specula::speculators {
namespace {

// Always proposes "ls" (0.5) then "pwd" (0.25).
class Fixed : public Speculator {
 public:
  Result<std::vector<Candidate>> Propose(const History&, int k) override {
    std::vector<Candidate> c = {{"ls", 0.5, "fixed"}, {"pwd", 0.25, "fixed"}};
    c.resize(std::min<size_t>(c.size(), static_cast<size_t>(k)));
    return c;
  }
  std::string Name() const override { return "fixed"; }
};

EvalSession Session(const std::string& source, const std::vector<std::string>& cmds) {
  EvalSession s;
  s.source = source;
  s.name = source + "-run";
  for (const auto& c : cmds) {
    Step st;
    st.command = c;
    s.history.steps.push_back(st);
  }
  return s;
}

TEST(EvaluateTest, HitRatesPerSourceAndCalibration) {
  std::vector<EvalSession> sessions = {Session("a", {"ls", "pwd", "make"}), Session("b", {"ls", "cat > x << E\ny\nE"})};
  EvalOptions o;
  o.ks = {1, 2};
  o.misses = 10;
  auto r = Evaluate([](const EvalSession&) { return std::make_unique<Fixed>(); }, sessions, o);
  EXPECT_EQ(r.speculator, "fixed");
  EXPECT_EQ(r.sessions, 2u);
  EXPECT_EQ(r.all.steps, 5u);
  EXPECT_EQ(r.all.hits.at(1), 2u);  // the two "ls"
  EXPECT_EQ(r.all.hits.at(2), 3u);  // and "pwd"
  EXPECT_EQ(r.by_source.at("a").hits.at(2), 2u);
  EXPECT_EQ(r.by_source.at("b").hits.at(1), 1u);
  EXPECT_EQ(r.all.read_only_steps, 3u);  // ls, pwd, ls
  EXPECT_EQ(r.all.read_only_hits.at(2), 3u);
  EXPECT_EQ(r.all.heredoc_steps, 1u);
  EXPECT_EQ(r.hits_by_candidate_source.at("fixed"), 3u);
  // 10 proposals: 5 at 0.5 (2 hits), 5 at 0.25 (1 hit).
  EXPECT_EQ(r.reliability.count(), 10u);
  EXPECT_NEAR(r.reliability.ExpectedCalibrationError(), 0.5 * 0.1 + 0.5 * 0.05, 1e-9);
  // Misses: "make" only (here-documents are not sampled).
  ASSERT_EQ(r.misses.size(), 1u);
  EXPECT_EQ(r.misses[0].truth, "make");
  EXPECT_EQ(r.misses[0].previous, "pwd");
  auto j = r.ToJson();
  EXPECT_DOUBLE_EQ(j["all"]["rates"]["hit@2"].get<double>(), 0.6);
  EXPECT_NE(r.ToText().find("hit@2  60.0%"), std::string::npos);
}

TEST(DatasetTest, TasksAndSplits) {
  EXPECT_EQ(TaskOfName("django__django-11099_deepseek_chat_test_1-100_684fe836"), "django__django-11099");
  EXPECT_EQ(TaskOfName("config-hosts-entries"), "config-hosts-entries");
  EXPECT_EQ(TaskOfName("a__b"), "a__b");
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) names.push_back("repo__pkg-" + std::to_string(i) + "_run_a");
  names.push_back("repo__pkg-1_run_b");
  names.push_back("repo__pkg-1_run_c");
  auto test = SelectSubset(names, "test"), dev = SelectSubset(names, "dev"), train = SelectSubset(names, "train");
  size_t nt = 0, nd = 0, nr = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(test[i] + dev[i] + train[i], 1) << names[i];
    nt += test[i];
    nd += dev[i];
    nr += train[i];
  }
  EXPECT_GT(nt, 20u);
  EXPECT_GT(nd, 20u);
  EXPECT_GT(nr, 80u);
  // All runs of a task land in the same bucket.
  EXPECT_EQ(test[1], test[200]);
  EXPECT_EQ(test[1], test[201]);
  // Replay: one run of the repeated task is held out, the rest kept.
  auto replay = SelectSubset(names, "replay"), rest = SelectSubset(names, "replay-rest");
  size_t held = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_NE(replay[i], rest[i]);
    held += replay[i];
  }
  EXPECT_EQ(held, 1u);
  EXPECT_TRUE(replay[1] || replay[200] || replay[201]);
  bool ok = true;
  SelectSubset(names, "nonsense", &ok);
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace specula::speculators
