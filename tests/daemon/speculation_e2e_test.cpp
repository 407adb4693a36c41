// Transparent speculation through the real speculad: a session created with
// speculation on gets branches launched by the daemon's own speculator
// after each commit, and a client that only ever calls action.commit gets a
// hit whose result equals a sequential run. Without speculation the daemon
// launches nothing; a speculator failure never fails a commit.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

// The commands before the one the speculator should guess: write a script
// (the built-in speculator's strongest signal is running or viewing the file
// just written).
const std::vector<std::string> kPrefix = {"mkdir -p /tmp/spec-e2e && cd /tmp/spec-e2e",
                                          "printf 'echo hello from run.sh\\n' > run.sh"};

class SpeculationE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
    auto c = rpc::Client::Connect(daemon_->socket());
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    client_.emplace(std::move(*c));
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }

  Json Call(const std::string& method, const Json& params) {
    auto r = client_->Call(method, params);
    EXPECT_TRUE(r.ok()) << method << ": " << r.error().ToString();
    return r.ok() ? *r : Json();
  }
  std::string Create(const Json& params) { return Call("session.create", params).value("session", ""); }
  Json Commit(const std::string& s, const std::string& command) {
    return Call("action.commit", {{"session", s}, {"command", command}});
  }
  // The branches of `s` launched by the speculator from `head`. Polls until
  // there is one: the launch is asynchronous by design. The bound only
  // keeps a broken build from hanging; it is not a timing assertion.
  Json WaitForSpeculatorBranches(const std::string& s, const std::string& head) {
    for (int i = 0; i < 600; ++i) {
      Json found = Json::array();
      for (const auto& b : Call("branch.list", {{"session", s}})) {
        if (b.contains("origin") && b["parent_checkpoint"] == head) found.push_back(b);
      }
      if (!found.empty()) return found;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Json::array();
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::optional<rpc::Client> client_;
};

TEST_F(SpeculationE2E, AClientThatOnlyCommitsGetsAHitEqualToASequentialRun) {
  std::string s = Create({{"name", "transparent"},
                          {"speculation", {{"speculator", "builtin"}, {"k", 3}, {"launch", "all"}}}});
  ASSERT_FALSE(s.empty());
  std::string head;
  for (const auto& cmd : kPrefix) {
    Json r = Commit(s, cmd);
    ASSERT_EQ(r.value("exit_code", -1), 0) << r.dump();
    head = r.value("head", "");
  }
  Json launched = WaitForSpeculatorBranches(s, head);
  ASSERT_FALSE(launched.empty()) << "no speculator branch from " << head;
  // The best candidate (the list is in launch order: best first).
  const Json& guess = launched[0];
  EXPECT_EQ(guess["origin"]["source"], "speculator:builtin") << guess.dump();
  EXPECT_TRUE(guess["origin"]["confidence"].is_number()) << guess.dump();
  Json shown = Call("branch.show", {{"branch", guess["branch"]}});
  EXPECT_EQ(shown["origin"], guess["origin"]);
  std::string command = guess["command"];

  Json hit = Commit(s, command);
  EXPECT_EQ(hit["hit"], true) << command << ": " << hit.dump();
  EXPECT_EQ(hit["branch"], guess["branch"]);

  // The same commands in a session without speculation.
  std::string seq = Create({{"name", "sequential"}});
  for (const auto& cmd : kPrefix) Commit(seq, cmd);
  Json plain = Commit(seq, command);
  EXPECT_EQ(plain["hit"], false);
  EXPECT_EQ(hit["exit_code"], plain["exit_code"]) << command;
  EXPECT_EQ(hit["stdout"], plain["stdout"]) << command;
  EXPECT_EQ(hit["stderr"], plain["stderr"]) << command;
  // And the state after it: the same files in the working directory.
  Json ls_hit = Commit(s, "ls -1 /tmp/spec-e2e && cat /tmp/spec-e2e/run.sh");
  Json ls_plain = Commit(seq, "ls -1 /tmp/spec-e2e && cat /tmp/spec-e2e/run.sh");
  EXPECT_EQ(ls_hit["stdout"], ls_plain["stdout"]);

  Json session = Call("session.show", {{"session", s}});
  ASSERT_TRUE(session.contains("speculation")) << session.dump();
  EXPECT_EQ(session["speculation"]["config"]["speculator"], "builtin");
  EXPECT_GE(session["speculation"]["hits"].get<int>(), 1) << session.dump();
  EXPECT_GE(session["speculation"]["launched"].get<int>(), 1);

  // The CLI shows who launched it.
  SpawnResult table = RunCli(daemon_->socket(), {"branches", s});
  EXPECT_NE(table.out.find("speculator:builtin"), std::string::npos) << table.out << table.err;
  SpawnResult inspect = RunCli(daemon_->socket(), {"inspect", guess["branch"].get<std::string>()});
  EXPECT_NE(inspect.out.find("launched by  speculator:builtin"), std::string::npos) << inspect.out;
}

TEST_F(SpeculationE2E, ASessionWithoutSpeculationLaunchesNothing) {
  std::string s = Create({{"name", "client-only"}});
  for (const auto& cmd : kPrefix) Commit(s, cmd);
  Json r = Commit(s, "bash run.sh");
  EXPECT_EQ(r["hit"], false);
  EXPECT_EQ(r["stdout"], "hello from run.sh\n");
  Json branches = Call("branch.list", {{"session", s}});
  EXPECT_EQ(branches.size(), kPrefix.size() + 1) << branches.dump();  // the commits' own runs
  for (const auto& b : branches) {
    EXPECT_FALSE(b.contains("origin")) << b.dump();
    EXPECT_EQ(b["state"], "promoted") << b.dump();
  }
  EXPECT_FALSE(Call("session.show", {{"session", s}}).contains("speculation"));
}

// Found by the sse_fuzzer campaign (2026-12-06): the built-in speculator's
// command analysis read past an empty list for the `write` program, so one
// commit of `write USER TTY` in a session with speculation on crashed the
// daemon (every session with it) when the next round analysed its history.
TEST_F(SpeculationE2E, ACommandTheSpeculatorMisreadCannotCrashTheDaemon) {
  std::string s = Create({{"speculation", {{"speculator", "builtin"}, {"k", 2}}}});
  ASSERT_FALSE(s.empty());
  Json r = Commit(s, "write alice pts/1");
  ASSERT_TRUE(r.contains("exit_code")) << r.dump();
  const std::string head = Call("session.show", {{"session", s}}).value("head", "");
  ASSERT_FALSE(head.empty());
  // The round over the new head (the speculator has read the command).
  std::string round_head;
  for (int i = 0; i < 600 && round_head != head; ++i) {
    round_head = Call("session.show", {{"session", s}})["speculation"].value("round_head", "");
    if (round_head != head) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(round_head, head);
  EXPECT_EQ(Commit(s, "echo alive")["stdout"], "alive\n");
}

// The daemon learns an agent across sessions (speculators::AgentLearning):
// once sessions of agent "habit-bot" have ended, a new session of the same
// agent has the agent's opener launched from its root before its first
// commit; a session of another agent does not.
TEST_F(SpeculationE2E, AnAgentsFinishedSessionsTeachItsNextSession) {
  const std::string opener = "echo habit-opener-7f3";
  auto create = [&](const std::string& agent) {
    return Call("session.create", {{"speculation", {{"speculator", "builtin"}, {"k", 8}, {"launch", "all"},
                                                    {"agent", agent}}}});
  };
  for (int i = 0; i < 3; ++i) {
    std::string s = create("habit-bot").value("session", "");
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(Commit(s, opener)["stdout"], "habit-opener-7f3\n");
    Commit(s, "true");
    Call("session.destroy", {{"session", s}});
  }
  // The round over a new session's root, settled (whatever it launched).
  auto root_round = [&](const std::string& agent) {
    Json created = create(agent);
    const std::string s = created.value("session", ""), head = created.value("head", "");
    EXPECT_FALSE(s.empty());
    for (int i = 0; i < 600; ++i) {
      if (Call("session.show", {{"session", s}})["speculation"].value("round_head", "") == head) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::vector<std::string> commands;
    for (const auto& b : Call("branch.list", {{"session", s}})) {
      if (b.contains("origin")) commands.push_back(b["command"]);
    }
    return commands;
  };
  auto learned = root_round("habit-bot");
  EXPECT_NE(std::find(learned.begin(), learned.end(), opener), learned.end())
      << ::testing::PrintToString(learned);
  auto other = root_round("someone-else");
  EXPECT_EQ(std::find(other.begin(), other.end(), opener), other.end()) << ::testing::PrintToString(other);
}

TEST_F(SpeculationE2E, AModelEndpointDownNeverFailsACommitAndSessionShowSaysWhy) {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  std::string s = Create({{"speculation",
                           {{"speculator", "openai"}, {"model", "m"}, {"endpoint", "http://127.0.0.1:1/v1"}}}});
  ASSERT_FALSE(s.empty());
  Json r = Commit(s, "echo still works");
  EXPECT_EQ(r["stdout"], "still works\n") << r.dump();
  std::string error;
  for (int i = 0; i < 600 && error.empty(); ++i) {
    error = Call("session.show", {{"session", s}})["speculation"].value("last_error", "");
    if (error.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(Commit(s, "echo again")["stdout"], "again\n");
}

TEST_F(SpeculationE2E, TheCliTurnsItOn) {
  SpawnResult r = RunCli(daemon_->socket(), {"--json", "session", "create", "--speculation", "builtin", "--k", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string s = Json::parse(r.out)["session"];
  Json show = Call("session.show", {{"session", s}});
  EXPECT_EQ(show["speculation"]["config"]["speculator"], "builtin") << show.dump();
  EXPECT_EQ(show["speculation"]["config"]["k"], 2);
  SpawnResult text = RunCli(daemon_->socket(), {"session", "show", s});
  EXPECT_NE(text.out.find("speculation  builtin, k 2"), std::string::npos) << text.out;
  // The text says whether the round for the head is over (round_head).
  Json c = Commit(s, "echo one");
  std::string head = c["head"];
  for (int i = 0; i < 600; ++i) {
    if (Call("session.show", {{"session", s}})["speculation"].value("round_head", "") == head) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  text = RunCli(daemon_->socket(), {"session", "show", s});
  EXPECT_NE(text.out.find("round for the head done"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace specula::testing
