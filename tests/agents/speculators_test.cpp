// The built-in speculators: the n-gram model learns repeated patterns from the
// corpus and the session, is calibrated on held-out trajectories and never
// predicts a trajectory with a model trained on it; the oracle's accuracy
// converges to its set p.
#include "agents/builtin_speculators.h"

#include <gtest/gtest.h>

namespace specula::agents {
namespace {

Trajectory Make(const std::string& name, const std::vector<std::string>& cmds) {
  Trajectory t;
  t.name = name;
  t.task = "task " + name;
  for (const auto& c : cmds) {
    TrajectoryStep s;
    s.command = c;
    s.think_ms = 100;
    s.recorded = ActionOutcome{0, 0, "out " + c, "", false, 1};
    t.steps.push_back(s);
  }
  return t;
}

History Prefix(const Trajectory& t, size_t n) {
  History h;
  h.task = t.task;
  for (size_t i = 0; i < n; ++i) h.turns.push_back({t.steps[i].command, *t.steps[i].recorded});
  return h;
}

TEST(NgramSpeculatorTest, PredictsAPatternRepeatedAcrossTrajectories) {
  // Every trajectory edits, builds and tests; "make" is always followed by
  // "make test".
  std::vector<Trajectory> corpus;
  for (int i = 0; i < 6; ++i) {
    corpus.push_back(Make("t" + std::to_string(i),
                          {"ls", "vi f" + std::to_string(i) + ".c", "make", "make test"}));
  }
  auto s = NgramSpeculator::Train(corpus, "t0");
  auto c = s.Propose(Prefix(corpus[0], 3), 3);
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->empty());
  EXPECT_EQ((*c)[0].command, "make test");
  // Calibrated on held-out trajectories where this rule was always right:
  // confidence is high but below 1 (Laplace smoothing).
  EXPECT_GT((*c)[0].confidence, 0.6);
  EXPECT_LT((*c)[0].confidence, 1.0);
  // The opening command is learned too.
  auto first = s.Propose(Prefix(corpus[0], 0), 1);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].command, "ls");
}

TEST(NgramSpeculatorTest, LearnsFromTheSessionsOwnHistory) {
  // Nothing in the corpus, but the session repeats "edit; run tests".
  std::vector<Trajectory> corpus = {Make("other", {"a", "b", "c"}), Make("x", {"d", "e"})};
  auto s = NgramSpeculator::Train(corpus, "");
  Trajectory session = Make("s", {"cat notes", "bash run_tests.sh", "vi lib.sh", "bash run_tests.sh",
                                  "vi lib.sh"});
  auto c = s.Propose(Prefix(session, 5), 2);
  ASSERT_TRUE(c.ok());
  std::vector<std::string> cmds;
  for (const auto& x : *c) cmds.push_back(x.command);
  EXPECT_NE(std::find(cmds.begin(), cmds.end(), "bash run_tests.sh"), cmds.end());
}

TEST(NgramSpeculatorTest, LeaveOneOutNeverSeesTheExcludedTrajectory) {
  // A command sequence that exists only in trajectory "only".
  std::vector<Trajectory> corpus = {Make("only", {"unique-a", "unique-b"}),
                                    Make("y", {"p", "q"}), Make("z", {"p", "r"})};
  auto with = NgramSpeculator::Train(corpus, "");
  auto without = NgramSpeculator::Train(corpus, "only");
  auto h = Prefix(corpus[0], 1);
  auto cw = with.Propose(h, 3);
  auto co = without.Propose(h, 3);
  ASSERT_TRUE(cw.ok());
  ASSERT_TRUE(co.ok());
  ASSERT_FALSE(cw->empty());
  EXPECT_EQ((*cw)[0].command, "unique-b");
  for (const auto& c : *co) EXPECT_NE(c.command, "unique-b");
}

TEST(OracleSpeculatorTest, AccuracyConvergesToP) {
  Trajectory t = Make("t", {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"});
  for (double p : {0.0, 0.3, 0.7, 1.0}) {
    OracleSpeculator o(t, {p, -1, 42});
    EXPECT_TRUE(o.Synthetic());
    EXPECT_NE(o.Name().find("synthetic"), std::string::npos);
    int right = 0, total = 0;
    for (int rep = 0; rep < 2000; ++rep) {
      size_t i = static_cast<size_t>(rep) % t.steps.size();
      auto c = o.Propose(Prefix(t, i), 1);
      ASSERT_TRUE(c.ok());
      ASSERT_EQ(c->size(), 1u);
      EXPECT_DOUBLE_EQ((*c)[0].confidence, p);
      right += (*c)[0].command == t.steps[i].command ? 1 : 0;
      ++total;
    }
    // 2000 Bernoulli trials: 4.5 standard deviations at p=0.5 is 0.05.
    EXPECT_NEAR(static_cast<double>(right) / total, p, 0.05) << "p=" << p;
  }
}

TEST(OracleSpeculatorTest, SlotsFollowOneMinusOneMinusPToTheK) {
  Trajectory t = Make("t", {"s0", "s1", "s2", "s3", "s4", "s5"});
  OracleSpeculator o(t, {0.4, -1, 7});
  int hit = 0;
  const int n = 3000;
  for (int rep = 0; rep < n; ++rep) {
    auto c = o.Propose(Prefix(t, 2), 3);
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c->size(), 3u);
    int truth = 0;
    for (const auto& x : *c) truth += x.command == "s2" ? 1 : 0;
    EXPECT_LE(truth, 1);  // never proposed twice
    hit += truth;
  }
  // q(3) = 1 - 0.6^3 = 0.784
  EXPECT_NEAR(static_cast<double>(hit) / n, 0.784, 0.04);
}

TEST(NormalizeCandidatesTest, SortsDedupsTrimsAndCaps) {
  auto out = NormalizeCandidates({{" a ", 0.2, ""}, {"b", 0.9, ""}, {"a", 0.5, ""}, {"", 1.0, ""},
                                  {"c", 1.5, ""}},
                                 3);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].command, "c");
  EXPECT_DOUBLE_EQ(out[0].confidence, 1.0);
  EXPECT_EQ(out[1].command, "b");
  EXPECT_EQ(out[2].command, "a");
  EXPECT_DOUBLE_EQ(out[2].confidence, 0.5);
}

}  // namespace
}  // namespace specula::agents
