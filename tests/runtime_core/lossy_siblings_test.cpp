// Sibling branches of one head that write the same lossy `restore` path
// (real sandboxes, real host file). Each branch's pre-image is what the host
// file held when that branch started, so (a) two branches must not run at
// once (one would capture the other's half-done write as its pre-image) and
// (b) discards must undo them newest first, like a stack: the soak saw a
// session's lossy file end up empty after a commit had written it.
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core_test_util.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

class LossySiblingsTest : public CoreFixture {
 protected:
  void SetUp() override {
    CoreFixture::SetUp();
    lossy_ = Scratch() + "-lossy-siblings";
    Write("original\n");
  }
  void TearDown() override {
    CoreFixture::TearDown();
    ::unlink(lossy_.c_str());
  }
  void Write(const std::string& text) { std::ofstream(lossy_, std::ios::trunc) << text; }
  std::string Read() const {
    std::ostringstream s;
    s << std::ifstream(lossy_).rdbuf();
    return s.str();
  }
  std::string LossySession() {
    policy::Policy p = policy::DefaultPolicy();
    p.paths.push_back({lossy_, policy::PathMode::kLossy, "siblings", policy::Compensation::kRestore, ""});
    return NewSession(p);
  }
  // A write that leaves the file empty for a while before filling it, as a
  // shell's `>` does for an instant.
  std::string SlowWrite(const std::string& text) const {
    return ": > " + lossy_ + "; sleep 0.2; echo " + text + " > " + lossy_;
  }

  std::string lossy_;
};

TEST_F(LossySiblingsTest, DiscardedSiblingsPutBackWhatWasThereBeforeAnyOfThem) {
  std::string s = LossySession();
  ASSERT_FALSE(s.empty());
  // Several rounds: the order in which a session keeps its branches is not
  // the order they started in, so one round could pass by luck.
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string before = Read();
    for (int c = 0; c < 3; ++c) {
      auto b = mgr_->Speculate(s, SlowWrite("r" + std::to_string(round) + "c" + std::to_string(c)));
      ASSERT_TRUE(b.ok()) << b.error().ToString();
      std::this_thread::sleep_for(60ms);  // the next one starts while this one writes
    }
    auto r = MustCommit(s, "true # none of them");
    EXPECT_FALSE(r.hit);
    EXPECT_EQ(Read(), before);
  }
}

TEST_F(LossySiblingsTest, ThePromotedSiblingsWriteStaysAndIsReported) {
  std::string s = LossySession();
  ASSERT_FALSE(s.empty());
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<std::string> cmds;
    for (int c = 0; c < 3; ++c) {
      cmds.push_back(SlowWrite("r" + std::to_string(round) + "c" + std::to_string(c)));
      auto b = mgr_->Speculate(s, cmds.back());
      ASSERT_TRUE(b.ok()) << b.error().ToString();
      std::this_thread::sleep_for(60ms);
    }
    const int pick = round % 3;
    auto r = MustCommit(s, cmds[pick]);
    EXPECT_TRUE(r.hit);
    const std::string want = "r" + std::to_string(round) + "c" + std::to_string(pick) + "\n";
    EXPECT_EQ(Read(), want);
    // The commit reports its own write, whatever its siblings wrote first.
    bool reported = false;
    for (const auto& e : r.lossy_effects) reported |= e.path == lossy_ && e.tag == "siblings";
    EXPECT_TRUE(reported) << "the hit's lossy write is missing from its commit";
  }
}

}  // namespace
}  // namespace specula::core::testing
