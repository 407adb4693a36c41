// The built-in speculator on the real trajectories in ../shared/trajectories
// (skipped when that directory is absent): trained on the train+dev split,
// measured on the held-out test split, and across sources. The thresholds
// guard against regressions, a little under the figures docs/speculators.md
// reports. Also checks that the shipped model is derived from commands only
// and was not trained on the held-out split.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "agents/builtin_speculators.h"
#include "agents/trajectory.h"
#include "speculators/builtin.h"
#include "speculators/dataset.h"
#include "speculators/evaluate.h"
#include "speculators/trainer.h"

namespace specula::speculators {
namespace {

std::string SharedDir() {
  const char* env = std::getenv("SPECULA_SHARED_TRAJECTORIES");
  return env && *env ? env : SPECULA_SHARED_TRAJECTORIES;
}

std::vector<EvalSession> Load(const std::string& dir, const std::string& agent, const std::string& subset) {
  auto corpus = agents::LoadCorpus(dir);
  EXPECT_TRUE(corpus.ok()) << corpus.status().ToString();
  if (!corpus.ok()) return {};
  std::vector<std::string> names;
  for (const auto& t : *corpus) names.push_back(t.name);
  auto keep = SelectSubset(names, subset);
  std::vector<EvalSession> out;
  for (size_t i = 0; i < corpus->size(); ++i) {
    if (!keep[i]) continue;
    EvalSession s;
    s.history = agents::ToSpeculatorHistory((*corpus)[i], agent, TaskOfName(names[i]));
    s.source = agent + "@" + subset;
    s.name = names[i];
    out.push_back(std::move(s));
  }
  return out;
}

std::shared_ptr<const Model> TrainOn(const std::vector<std::vector<EvalSession>>& sets) {
  std::vector<History> h;
  for (const auto& set : sets) {
    for (const auto& s : set) h.push_back(s.history);
  }
  auto m = Train(h, TrainOptions{});
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::make_shared<const Model>(std::move(*m));
}

EvalReport RunEval(const std::shared_ptr<const Model>& model, const std::vector<EvalSession>& test) {
  EvalOptions o;
  o.ks = {1, 3, 8};
  return Evaluate([&](const EvalSession&) { return std::make_unique<BuiltinSpeculator>(model); }, test, o);
}

double Rate(const EvalReport& r, int k) {
  return static_cast<double>(r.all.hits.at(k)) / static_cast<double>(r.all.steps);
}

class SharedDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::is_directory(SharedDir() + "/swe-mini-deepseek")) {
      GTEST_SKIP() << SharedDir() << " is absent";
    }
  }
  std::string swe() const { return SharedDir() + "/swe-mini-deepseek"; }
  std::string tb() const { return SharedDir() + "/tb-solutions"; }
};

TEST_F(SharedDataTest, HeldOutTasksOfTheSameAgents) {
  auto model = TrainOn({Load(swe(), "swe-mini-deepseek", "train+dev"), Load(tb(), "tb-solutions", "train+dev")});
  auto test = Load(swe(), "swe-mini-deepseek", "test");
  ASSERT_FALSE(test.empty());
  auto r = RunEval(model, test);
  EXPECT_GE(Rate(r, 1), 0.10);
  EXPECT_GE(Rate(r, 3), 0.12);
  EXPECT_GE(Rate(r, 8), 0.14);
  EXPECT_LE(r.reliability.ExpectedCalibrationError(), 0.05);
  EXPECT_LE(r.reliability_top1.ExpectedCalibrationError(), 0.05);
  EXPECT_LT(r.mean_us, 2000);  // microseconds, even on a loaded CI machine
}

TEST_F(SharedDataTest, OtherAgentsOnlyWithOnlineLearning) {
  auto model = TrainOn({Load(tb(), "tb-solutions", "all"), Load(SPECULA_CORPUS_DIR, "specula-corpus", "all")});
  auto test = Load(swe(), "swe-mini-deepseek", "test");
  auto r = RunEval(model, test);
  EXPECT_GE(Rate(r, 3), 0.07);
  EXPECT_LE(r.reliability.ExpectedCalibrationError(), 0.05);
}

TEST_F(SharedDataTest, ShippedModelIsDerivedFromCommandsOfTheTrainingSplit) {
  auto m = Model::Shipped();
  ASSERT_TRUE(m.ok());
  for (const auto& t : (*m)->meta["trained_on"]) EXPECT_EQ(t["subset"], "train+dev") << t.dump();
  // Every literal template is a command some trajectory ran (never output text).
  std::set<std::string> commands;
  for (const auto& dir : {swe(), tb()}) {
    for (const auto& s : Load(dir, "x", "all")) {
      for (const auto& st : s.history.steps) commands.insert(TrimCommand(st.command));
    }
  }
  size_t literal = 0;
  std::vector<const CountTable*> tables = {&(*m)->generic};
  for (const auto& [name, t] : (*m)->agents) tables.push_back(&t);
  for (const CountTable* t : tables) {
    for (const auto& level : t->levels()) {
      for (const auto& [key, c] : level) {
        for (const auto& [tmpl, h] : c.top) {
          if (HasSlots(tmpl)) continue;
          ++literal;
          EXPECT_TRUE(commands.count(tmpl)) << tmpl;
        }
      }
    }
  }
  EXPECT_GT(literal, 50u);
}

}  // namespace
}  // namespace specula::speculators
