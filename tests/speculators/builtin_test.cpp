// The built-in speculator v2 on small synthetic agents: it learns an
// agent's templates (run the file just written, its opener, its submit
// command), learns a session's own habits online, replays earlier runs of
// the same task, keeps its confidences in [0,1] and round-trips its model
// through the file format. The shipped model loads and holds only derived,
// short, multi-task content.
#include "speculators/builtin.h"

#include <gtest/gtest.h>

#include "speculators/trainer.h"

namespace specula::speculators {
namespace {

Step S(std::string cmd, std::string out = "", int exit_code = 0) {
  Step s;
  s.command = std::move(cmd);
  s.stdout_text = std::move(out);
  s.exit_code = exit_code;
  return s;
}

// An agent that lists, writes a script, runs it, views the module the
// listing showed, and submits.
History AgentRun(const std::string& agent, int task) {
  std::string n = std::to_string(task);
  History h;
  h.agent = agent;
  h.task_id = "task-" + n;
  h.steps = {S("ls -la", "total 4\n-rw-r--r-- 1 r r 1 mod" + n + ".py\n"),
             S("cat mod" + n + ".py", "def f():\n    return " + n + "\n"),
             S("cat > check_" + n + ".py << 'EOF'\nimport mod" + n + "\nEOF"),
             S("python check_" + n + ".py", "ok\n"),
             S("git diff > patch.txt"),
             S("cat patch.txt", "diff --git\n"),
             S("echo DONE && cat patch.txt", "diff --git\n")};
  return h;
}

std::vector<History> Corpus(const std::string& agent, int n, int first = 0) {
  std::vector<History> v;
  for (int i = first; i < first + n; ++i) v.push_back(AgentRun(agent, i));
  return v;
}

// A second agent with other habits, so that the unknown-agent scorer is
// fitted across agents.
History OtherRun(int task) {
  std::string n = std::to_string(task);
  History h;
  h.agent = "other";
  h.task_id = "other-" + n;
  h.steps = {S("pwd"), S("cat notes" + n + ".md", "# notes\n"), S("make build" + n), S("make check"),
             S("sed -i 's/a/b/' src/x" + n + ".c"), S("make check")};
  return h;
}

// Both agents; the first tasks of "bot" were run twice (runbook examples).
std::vector<History> Mixed() {
  auto v = Corpus("bot", 12);
  for (int i = 0; i < 6; ++i) v.push_back(AgentRun("bot", i));
  for (int i = 0; i < 10; ++i) v.push_back(OtherRun(i));
  return v;
}

std::shared_ptr<const Model> TrainOn(const std::vector<History>& sessions) {
  TrainOptions o;
  o.folds = 3;
  auto m = Train(sessions, o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::make_shared<const Model>(std::move(*m));
}

std::vector<std::string> Commands(const std::vector<Candidate>& c) {
  std::vector<std::string> out;
  for (const auto& x : c) out.push_back(x.command);
  return out;
}

bool Contains(const std::vector<Candidate>& c, const std::string& cmd) {
  for (const auto& x : c) {
    if (x.command == cmd) return true;
  }
  return false;
}

TEST(BuiltinSpeculatorTest, LearnsTheAgentsTemplatesForUnseenTasks) {
  auto model = TrainOn(Corpus("bot", 12));
  BuiltinSpeculator spec(model);
  History h = AgentRun("bot", 99);  // a task it never saw
  auto full = h.steps;
  h.steps.clear();
  // Opener.
  auto c0 = spec.Propose(h, 3);
  ASSERT_TRUE(c0.ok());
  ASSERT_FALSE(c0->empty());
  EXPECT_EQ((*c0)[0].command, "ls -la");
  // The module the listing showed.
  h.steps.push_back(full[0]);
  auto c1 = spec.Propose(h, 3);
  ASSERT_TRUE(c1.ok());
  EXPECT_TRUE(Contains(*c1, "cat mod99.py")) << ::testing::PrintToString(Commands(*c1));
  // Run the file just written.
  h.steps.push_back(full[1]);
  h.steps.push_back(full[2]);
  auto c3 = spec.Propose(h, 3);
  ASSERT_TRUE(c3.ok());
  ASSERT_FALSE(c3->empty());
  EXPECT_EQ((*c3)[0].command, "python check_99.py");
  EXPECT_GT((*c3)[0].confidence, 0.3);
  EXPECT_LE((*c3)[0].confidence, 1.0);
  EXPECT_NE((*c3)[0].source.find("template"), std::string::npos);
  // The submit command after the read-back of the patch.
  h.steps.push_back(full[3]);
  h.steps.push_back(full[4]);
  h.steps.push_back(full[5]);
  auto c6 = spec.Propose(h, 3);
  ASSERT_TRUE(c6.ok());
  EXPECT_EQ((*c6)[0].command, "echo DONE && cat patch.txt");
}

TEST(BuiltinSpeculatorTest, ConfidencesAreSortedDistinctAndBounded) {
  auto model = TrainOn(Corpus("bot", 9));
  BuiltinSpeculator spec(model);
  History h = AgentRun("bot", 50);
  History prefix;
  prefix.agent = h.agent;
  for (const auto& s : h.steps) {
    auto c = spec.Propose(prefix, 8);
    ASSERT_TRUE(c.ok());
    EXPECT_LE(c->size(), 8u);
    for (size_t i = 0; i < c->size(); ++i) {
      EXPECT_GE((*c)[i].confidence, 0.0);
      EXPECT_LE((*c)[i].confidence, 1.0);
      if (i) {
        EXPECT_GE((*c)[i - 1].confidence, (*c)[i].confidence);
      }
      for (size_t j = 0; j < i; ++j) EXPECT_NE((*c)[i].command, (*c)[j].command);
    }
    prefix.steps.push_back(s);
  }
}

TEST(BuiltinSpeculatorTest, IncrementalAndFreshProposalsAgree) {
  auto model = TrainOn(Corpus("bot", 9));
  History h = AgentRun("bot", 77);
  BuiltinSpeculator incremental(model);
  History prefix;
  prefix.agent = "bot";
  prefix.task_id = h.task_id;
  for (size_t i = 0; i < h.steps.size(); ++i) {
    BuiltinOptions o;
    o.online_calibration = false;
    BuiltinSpeculator fresh(model, o);
    BuiltinSpeculator inc(model, o);
    auto a = fresh.Propose(prefix, 5);
    // Feed the incremental one step by step from the start.
    History p2;
    p2.agent = "bot";
    p2.task_id = h.task_id;
    std::vector<Candidate> b;
    for (size_t j = 0; j <= i; ++j) {
      auto r = inc.Propose(p2, 5);
      ASSERT_TRUE(r.ok());
      b = *r;
      if (j < i) p2.steps.push_back(h.steps[j]);
    }
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(Commands(*a), Commands(b)) << "step " << i;
    prefix.steps.push_back(h.steps[i]);
  }
  // A history that does not extend the last one restarts the session.
  History other = AgentRun("bot", 5);
  other.steps.resize(3);
  auto r = incremental.Propose(other, 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(incremental.state().size(), 3u);
}

// A session of an agent the model does not know, with a habit of its own:
// every edit of src/lib.c is followed by "make -C build check".
History HabitSession() {
  History h;
  h.agent = "someone-else";
  for (int i = 0; i < 4; ++i) {
    h.steps.push_back(S("sed -i 's/x" + std::to_string(i) + "/y/' src/lib.c"));
    h.steps.push_back(S("make -C build check", "FAIL\n", 2));
  }
  return h;
}

TEST(BuiltinSpeculatorTest, LearnsTheSessionsOwnHabitOnline) {
  // Models of other agents: nothing about "make -C build check".
  auto model = TrainOn(Mixed());
  BuiltinSpeculator spec(model);
  History h = HabitSession();
  h.steps.push_back(S("sed -i 's/z/w/' src/lib.c"));
  auto c = spec.Propose(h, 3);
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->empty());
  EXPECT_EQ((*c)[0].command, "make -C build check");
  EXPECT_NE((*c)[0].source.find("session"), std::string::npos);
}

// A long session's history keeps only its newest steps (History::first
// says how many went): a history whose window slid on still extends the
// one before, so what the session taught the speculator stays, the steps
// that left the window included, and nothing is observed twice.
TEST(BuiltinSpeculatorTest, AWindowThatSlidOnStillExtendsTheSession) {
  auto model = TrainOn(Mixed());
  BuiltinSpeculator spec(model);
  History h = HabitSession();
  ASSERT_TRUE(spec.Propose(h, 3).ok());
  EXPECT_EQ(spec.state().size(), 8u);
  // The habit's steps leave the window; every step since the last proposal
  // is still in it.
  for (int i = 0; i < 30; ++i) h.steps.push_back(S("echo unrelated " + std::to_string(i)));
  h.steps.push_back(S("sed -i 's/z/w/' src/lib.c"));
  h.first = 8;
  h.steps.erase(h.steps.begin(), h.steps.begin() + 8);
  auto c = spec.Propose(h, 3);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(spec.state().size(), 39u) << "restarted instead of extending the session";
  ASSERT_FALSE(c->empty());
  EXPECT_EQ((*c)[0].command, "make -C build check");
  // A window that starts past what was observed is a gap: a new session.
  History gap;
  gap.agent = "someone-else";
  gap.first = 100;
  gap.steps = {S("ls")};
  ASSERT_TRUE(spec.Propose(gap, 3).ok());
  EXPECT_EQ(spec.state().size(), 1u);
}

TEST(BuiltinSpeculatorTest, ReplaysEarlierRunsOfTheSameTask) {
  auto model = TrainOn(Mixed());
  auto store = std::make_shared<RunbookStore>();
  // An earlier run of task "deploy" did an unusual sequence.
  store->Add("deploy", {"ls -la", "tar czf /tmp/site.tgz site", "scp-like-upload /tmp/site.tgz", "ls -la"});
  BuiltinSpeculator spec(model, {}, store);
  History h;
  h.agent = "bot";
  h.task_id = "deploy";
  h.steps = {S("ls -la", "site\n"), S("tar czf /tmp/site.tgz site")};
  auto c = spec.Propose(h, 3);
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->empty());
  EXPECT_EQ((*c)[0].command, "scp-like-upload /tmp/site.tgz");
  EXPECT_EQ((*c)[0].source, "builtin:runbook");
}

TEST(BuiltinSpeculatorTest, ModelRoundTripsThroughItsFile) {
  auto model = TrainOn(Corpus("bot", 9));
  auto back = Model::FromJson(model->ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  auto shared = std::make_shared<const Model>(std::move(*back));
  EXPECT_EQ(shared->ToJson().dump(), model->ToJson().dump());
  BuiltinSpeculator a(model), b(shared);
  History h = AgentRun("bot", 31);
  h.steps.resize(3);
  auto ca = a.Propose(h, 5), cb = b.Propose(h, 5);
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_EQ(ca->size(), cb->size());
  for (size_t i = 0; i < ca->size(); ++i) {
    EXPECT_EQ((*ca)[i].command, (*cb)[i].command);
    EXPECT_NEAR((*ca)[i].confidence, (*cb)[i].confidence, 1e-3);
  }
}

TEST(BuiltinSpeculatorTest, ModelParserRejectsBadFiles) {
  EXPECT_FALSE(Model::FromJson(nlohmann::json::array()).ok());
  EXPECT_FALSE(Model::FromJson({{"format", "other"}, {"version", 1}}).ok());
  EXPECT_FALSE(Model::FromJson({{"format", "specula-builtin-model"}, {"version", 2}}).ok());
  // Found by the model fuzzer (fuzz/corpus/model/format-not-a-string): a
  // format that is not a string threw out of the parser.
  EXPECT_FALSE(Model::FromJson({{"format", {{"a", 1}}}, {"version", 1}}).ok());
  EXPECT_FALSE(Model::FromJson({{"format", 7}}).ok());
  nlohmann::json j = TrainOn(Corpus("bot", 6))->ToJson();
  auto bad = j;
  bad["generic"]["levels"] = nlohmann::json::array();
  EXPECT_FALSE(Model::FromJson(bad).ok());
  bad = j;
  bad["params"]["root"] = 2;
  EXPECT_FALSE(Model::FromJson(bad).ok());
  bad = j;
  bad["scorers"]["known"]["iso_y"] = {0.5, 0.2};
  bad["scorers"]["known"]["iso_x"] = {0.1, 0.2};
  EXPECT_FALSE(Model::FromJson(bad).ok());
  bad = j;
  bad["generic"]["levels"][0]["*"]["t"] = {{"x", -1}};
  EXPECT_FALSE(Model::FromJson(bad).ok());
}

TEST(BuiltinSpeculatorTest, UnknownAgentUsesThePooledTables) {
  // One training agent: the unknown-agent scorer is the known one without
  // the agent's own estimate, so the pooled templates carry it.
  auto model = TrainOn(Corpus("bot", 9));
  BuiltinSpeculator spec(model);
  History h = AgentRun("never-seen", 40);
  h.steps.resize(3);
  auto c = spec.Propose(h, 3);
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->empty());
  EXPECT_EQ((*c)[0].command, "python check_40.py");
  // Two agents: the unknown-agent scorer is fitted by predicting each agent
  // from the other only; it still proposes.
  auto mixed = TrainOn(Mixed());
  EXPECT_TRUE(mixed->unknown.fitted);
  BuiltinSpeculator other(mixed);
  auto d = other.Propose(h, 8);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->empty());
}

TEST(ShippedModelTest, LoadsAndHoldsOnlyShortDerivedContent) {
  auto m = Model::Shipped();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_LT(ShippedModelText().size(), 1000000u);
  EXPECT_TRUE((*m)->known.fitted);
  EXPECT_TRUE((*m)->unknown.fitted);
  EXPECT_TRUE((*m)->meta.contains("command"));
  size_t templates = 0;
  for (const CountTable* t : {&(*m)->generic}) {
    for (const auto& level : t->levels()) {
      for (const auto& [key, c] : level) {
        for (const auto& [tmpl, h] : c.top) {
          ++templates;
          EXPECT_LE(tmpl.size(), kMaxTemplateBytes) << tmpl;
          EXPECT_EQ(tmpl.find('\n'), std::string::npos) << tmpl;
          EXPECT_GE(h, (*m)->params.prune.min_hits) << tmpl;
        }
      }
    }
  }
  EXPECT_GT(templates, 100u);
  auto spec = BuiltinSpeculator::WithShippedModel();
  ASSERT_TRUE(spec.ok());
  History h;
  h.steps = {S("cat > t.py << 'EOF'\nprint(1)\nEOF")};
  auto c = (*spec)->Propose(h, 3);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->empty());
}

}  // namespace
}  // namespace specula::speculators

namespace specula::speculators {
namespace {

// What the daemon learns across sessions (AgentLearning): an agent the
// model never saw teaches the next session of the same agent its opener
// (among its first three) and its "run the file just written", and
// nothing reaches another agent.
TEST(AgentLearningTest, FinishedSessionsTeachTheNextSessionOfTheSameUnknownAgent) {
  std::vector<History> others;
  for (int i = 0; i < 10; ++i) others.push_back(OtherRun(i));
  auto model = TrainOn(others);  // knows "other" only
  auto learning = std::make_shared<AgentLearning>();
  auto propose = [&](const std::string& agent, int task, size_t steps, bool learn) {
    BuiltinSpeculator spec(model, {}, nullptr, learn ? learning : nullptr);
    History h = AgentRun(agent, task);
    h.steps.resize(steps);
    auto c = spec.Propose(h, 3);
    EXPECT_TRUE(c.ok());
    return c.ok() ? *c : std::vector<Candidate>{};
  };
  // Before: neither the opener nor the run of the written file.
  EXPECT_FALSE(Contains(propose("bot", 50, 0, true), "ls -la"));
  EXPECT_EQ(learning->Table("bot"), nullptr) << "a session that observed no step teaches nothing";
  EXPECT_FALSE(Contains(propose("bot", 50, 3, true), "python check_50.py"));
  EXPECT_EQ(learning->Sessions("bot"), 1u) << "the three steps it saw are learned";
  // Four whole sessions of "bot", each folded in when its speculator goes.
  for (int task = 60; task < 64; ++task) {
    BuiltinSpeculator spec(model, {}, nullptr, learning);
    History h = AgentRun("bot", task);
    ASSERT_TRUE(spec.Propose(h, 3).ok());
  }
  EXPECT_EQ(learning->Sessions("bot"), 5u);
  ASSERT_NE(learning->Table("bot"), nullptr);
  // After: a new task of "bot" starts with its opener and runs its script.
  auto open = propose("bot", 70, 0, true);
  EXPECT_TRUE(Contains(open, "ls -la")) << ::testing::PrintToString(Commands(open));
  auto run = propose("bot", 70, 3, true);
  EXPECT_TRUE(Contains(run, "python check_70.py")) << ::testing::PrintToString(Commands(run));
  for (const auto& c : run) {
    EXPECT_GE(c.confidence, 0.0);
    EXPECT_LE(c.confidence, 1.0);
  }
  // Without the learning (a speculator not given it) nothing changed.
  EXPECT_FALSE(Contains(propose("bot", 70, 3, false), "python check_70.py"));
  // Another unknown agent learns nothing from "bot".
  EXPECT_EQ(learning->Table("third"), nullptr);
  EXPECT_FALSE(Contains(propose("third", 70, 3, true), "python check_70.py"));
}

}  // namespace
}  // namespace specula::speculators

namespace specula::speculators {
namespace {

// Agent names come from clients: what is learned stays bounded.
TEST(AgentLearningTest, LearningStopsAtItsBounds) {
  SessionState state("");
  std::vector<StepEvent> events;
  for (int i = 0; i < 6; ++i) events.push_back(MakeEvent(state, AnalyzeCommand("ls -la")));
  AgentLearning small(10);
  small.AddSession("a", events);
  small.AddSession("a", events);  // 12 > 10: not learned
  EXPECT_EQ(small.Sessions("a"), 1u);
  EXPECT_EQ(small.steps(), 6u);
  AgentLearning many;
  std::vector<StepEvent> one(events.begin(), events.begin() + 1);
  for (size_t i = 0; i < AgentLearning::kMaxAgents; ++i) many.AddSession("agent-" + std::to_string(i), one);
  many.AddSession("one-too-many", one);
  EXPECT_NE(many.Table("agent-0"), nullptr);
  EXPECT_EQ(many.Table("one-too-many"), nullptr);
  many.AddSession("agent-0", one);  // a known agent still learns
  EXPECT_EQ(many.Sessions("agent-0"), 2u);
}

}  // namespace
}  // namespace specula::speculators
