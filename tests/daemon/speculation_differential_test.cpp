// The differential test's transparent-speculation mode (issue 14; the
// core's mode, with client speculate calls, is DifferentialTest.
// SpeculationIsLossless in tests/runtime_core/differential_test.cpp).
// Transparent speculation lives in the daemon's service layer, so this mode
// runs through the real speculad: the same action sequence is committed in
// two sessions of one daemon, one with transparent speculation on (the
// built-in speculator, every candidate launched) and one with it off, by
// plain action.commit calls only; the client never speculates. After every
// commit the result (stdout, stderr, exit code, signal, truncation), the
// shell's cwd and the head's file tree (content, type, mode, owner, symlink
// targets, hard links; read through checkpoint.mount) must be identical.
// The sequence mixes the core test's random actions (the speculator's
// guesses for them are mostly wrong branches, discarded at the next commit)
// with a write-a-script-then-run-it round the built-in speculator knows
// (its strongest signal, and the session's own table learns the pattern),
// so the on-session must also get hits, each from a branch the speculator
// launched. SPECULA_DIFF_SEEDS / SPECULA_DIFF_STEPS size the run.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "runtime/rpc/client.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/runtime_core/action_gen.h"
#include "tests/runtime_core/tree_snapshot.h"

namespace specula::testing {
namespace {

class DifferentialTest : public ::testing::Test {
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
    EXPECT_TRUE(r.ok()) << method << " " << params.dump() << ": " << r.error().ToString();
    return r.ok() ? *r : Json::object();
  }
  // Until the speculation's round for `head` is over (its branches are all
  // launched), so that the next commit meets every branch the speculator
  // chose, as an agent thinking long enough would. The bound only keeps a
  // broken build from hanging; it is not a timing assertion.
  void WaitForRound(const std::string& session, const std::string& head) {
    for (int i = 0; i < 3000; ++i) {
      Json sp = Call("session.show", {{"session", session}}).value("speculation", Json::object());
      if (sp.value("round_head", "") == head) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "no speculation round finished for " << head;
  }
  // The head's tree below `tree`, through a read-only view of the checkpoint.
  std::string TreeOf(const std::string& checkpoint, const std::string& tree) {
    std::string view = dir_.path() + "/view";
    if (::mkdir(view.c_str(), 0700) != 0 && errno != EEXIST) ADD_FAILURE() << "mkdir " << view;
    Call("checkpoint.mount", {{"checkpoint", checkpoint}, {"dir", view}});
    std::string snap = core::testing::NormaliseLinks(core::testing::Snapshot(view + tree));
    Call("checkpoint.umount", {{"dir", view}});
    return snap;
  }
  std::string CwdOf(const std::string& checkpoint) {
    return Call("checkpoint.show", {{"checkpoint", checkpoint}}).value("cwd", "");
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::optional<rpc::Client> client_;
};

// A round the built-in speculator can know: write a script, then run it.
// The script's output depends on the tree, so a hit is only equal to the
// speculation-off run if the branch saw exactly the committed state.
std::vector<std::string> ScriptRound(const std::string& tree, int round) {
  std::string script = tree + "/run.sh";
  return {"printf 'echo round " + std::to_string(round) + "; ls -A " + tree + " | wc -l; cat " + tree +
              "/f0 2>&1\\n' > " + script,
          "bash " + script};
}

TEST_F(DifferentialTest, TransparentSpeculationThroughPlainCommitsIsLossless) {
  int seeds = 2;
  if (const char* v = std::getenv("SPECULA_DIFF_SEEDS")) seeds = std::max(1, std::atoi(v));
  int rounds = 6;
  if (const char* v = std::getenv("SPECULA_DIFF_STEPS")) rounds = std::max(1, std::atoi(v) / 4);
  int commits = 0, hits = 0, diffs = 0;
  uint64_t launched = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    // Written inside the sessions only (layer target): never on the host.
    std::string tree = "/var/tmp/specula-tdiff-" + std::to_string(::getpid()) + "-" + std::to_string(seed);
    core::testing::ActionGenerator gen(static_cast<uint32_t>(seed), tree);
    std::vector<std::string> actions{gen.Setup()};
    for (int r = 0; r < rounds; ++r) {
      actions.push_back(gen.Next());
      actions.push_back(gen.Next());
      for (auto& a : ScriptRound(tree, r)) actions.push_back(std::move(a));
    }

    Json spec = {{"speculator", "builtin"}, {"k", 3}, {"launch", "all"}};
    std::string on = Call("session.create", {{"name", "on"}, {"speculation", spec}}).value("session", "");
    std::string off = Call("session.create", {{"name", "off"}}).value("session", "");
    ASSERT_FALSE(on.empty());
    ASSERT_FALSE(off.empty());
    std::string head = Call("session.show", {{"session", on}}).value("head", "");
    int seed_hits = 0;
    for (size_t i = 0; i < actions.size(); ++i) {
      const std::string& cmd = actions[i];
      SCOPED_TRACE("step " + std::to_string(i) + ": " + cmd);
      WaitForRound(on, head);
      Json got = Call("action.commit", {{"session", on}, {"command", cmd}});
      Json want = Call("action.commit", {{"session", off}, {"command", cmd}});
      ASSERT_TRUE(got.contains("head") && want.contains("head"));
      head = got["head"];
      ++commits;
      EXPECT_EQ(want["hit"], false) << "nothing speculates in the off-session";
      if (got["hit"] == true) {
        ++seed_hits;
        // The client launched nothing: the branch is the speculator's.
        Json b = Call("branch.show", {{"branch", got["branch"]}});
        EXPECT_EQ(b.value("origin", Json::object()).value("source", ""), "speculator:builtin") << b.dump();
      }
      int before = diffs;
      auto check = [&](const std::string& what, const Json& a, const Json& b) {
        if (a == b) return;
        ++diffs;
        ADD_FAILURE() << what << " differs\n--- speculation off\n"
                      << (a.is_string() ? a.get<std::string>() : a.dump()) << "\n--- speculation on (hit="
                      << got["hit"] << ")\n" << (b.is_string() ? b.get<std::string>() : b.dump());
      };
      for (const char* f : {"stdout", "stderr", "exit_code", "signal", "truncated"}) check(f, want[f], got[f]);
      check("cwd", CwdOf(want["head"]), CwdOf(got["head"]));
      check("file tree", TreeOf(want["head"], tree), TreeOf(got["head"], tree));
      if (diffs != before) break;  // later steps would only repeat the difference
    }
    WaitForRound(on, head);
    Json status = Call("session.show", {{"session", on}}).value("speculation", Json::object());
    // Its own count agrees with the commits that were hits.
    EXPECT_EQ(status.value("hits", -1), seed_hits) << status.dump();
    launched += status.value("launched", uint64_t{0});
    hits += seed_hits;
    for (const auto& s : {on, off}) Call("session.destroy", {{"session", s}});
    struct stat st {};
    EXPECT_NE(::lstat(tree.c_str(), &st), 0) << tree << " was written on the host";
  }
  std::printf("transparent differential: %d commits compared, %llu branches launched, %d hits, %d differences\n",
              commits, static_cast<unsigned long long>(launched), hits, diffs);
  EXPECT_EQ(diffs, 0);
  EXPECT_GT(launched, 0u);
  // The script rounds are guessable: the speculator must have known some.
  EXPECT_GT(hits, 0);
}

}  // namespace
}  // namespace specula::testing
