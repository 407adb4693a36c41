// resources.disk is enforced (issue 12, "Containment"): a branch whose
// action writes more than its policy's disk limit gets the kernel's own
// EDQUOT/ENOSPC inside the sandbox, its upper dir holds at most about the
// limit, the daemon carries on, and the space comes back to the host (the
// allocated blocks of the store's sparse image, not just free space inside
// it) once the branch is discarded or its session destroyed.
//
// Through the real speculad and CLI; runs as root.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "tests/daemon/daemon_harness.h"

namespace specula::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kLimit = 64 * kMiB;
// What the store may keep after everything is gone, above where it started:
// filesystem metadata (trees, free-space cache) that does not shrink back.
constexpr uint64_t kSlack = 16 * kMiB;
// How long freed space may take to be punched out of the image: btrfs frees a
// deleted subvolume in the background and discard=async batches the trims.
constexpr auto kSpaceBack = seconds(180);

Json ParseOut(const SpawnResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  return j;
}

// Bytes the host really allocated for `path` (st_blocks), not its size.
uint64_t Allocated(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

bool IsSpaceError(const std::string& stderr_text) {
  return stderr_text.find("Disk quota exceeded") != std::string::npos ||
         stderr_text.find("No space left on device") != std::string::npos;
}

class DiskLimit : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "speculad needs root";
    policy_ = dir_.path() + "/disk64.toml";
    std::ofstream(policy_) << "name = \"disk64\"\nextends = \"default\"\n[resources]\ndisk = \"64MiB\"\n"
                              "timeout = \"120s\"\n";
    auto d = Daemon::Start(dir_.path());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    daemon_ = std::move(*d);
    image_ = daemon_->state_dir() + "/layers.img";
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- speculad log ----\n" << daemon_->Log();
  }
  SpawnResult Cli(std::vector<std::string> args) { return RunCli(daemon_->socket(), std::move(args)); }

  std::string CreateSession() {
    auto r = Cli({"--json", "session", "create", "--name", "disk", "--policy", policy_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseOut(r)["session"];
  }
  Json Commit(const std::string& s, const std::string& command) {
    return ParseOut(Cli({"--json", "--timeout-ms", "200000", "run", s, "--", command}));
  }
  Json Branch(const std::string& b) { return ParseOut(Cli({"--json", "inspect", b})); }
  // Polls until the branch's action has finished (done or failed).
  Json WaitDone(const std::string& b) {
    Json j;
    for (int i = 0; i < 1200; ++i) {
      j = Branch(b);
      if (j["state"] == "done" || j["state"] == "failed") return j;
      std::this_thread::sleep_for(milliseconds(100));
    }
    ADD_FAILURE() << "branch " << b << " did not finish: " << j.dump();
    return j;
  }
  // Waits until the image's allocation is back to at most `bytes`; returns
  // what it last saw.
  uint64_t WaitAllocatedAtMost(uint64_t bytes) {
    auto deadline = std::chrono::steady_clock::now() + kSpaceBack;
    uint64_t now = Allocated(image_);
    while (now > bytes && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(250));
      now = Allocated(image_);
    }
    return now;
  }

  TempDir dir_;
  std::string policy_, image_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DiskLimit, ACommittedWriteStopsAtTheLimitAndTheSpaceComesBack) {
  std::string s = CreateSession();
  ASSERT_EQ(Commit(s, "true")["exit_code"], 0);  // the store is made and settled
  uint64_t baseline = Allocated(image_);
  ASSERT_GT(baseline, 0u) << image_;

  Json dd = Commit(s, "dd if=/dev/zero of=/root/big bs=1M count=200");
  EXPECT_NE(dd["exit_code"], 0) << "a 200 MiB write passed a 64 MiB limit: " << dd.dump();
  EXPECT_TRUE(IsSpaceError(dd["stderr"])) << dd["stderr"];
  std::string branch = dd["branch"];
  Json b = Branch(branch);
  EXPECT_LE(b["upper_bytes"].get<uint64_t>(), kLimit + kMiB) << b.dump();
  EXPECT_GE(b["upper_bytes"].get<uint64_t>(), kLimit / 2) << "the write should have filled most of the limit";

  // The commit itself went through: the next action sees what fitted.
  Json size = Commit(s, "stat -c %s /root/big");
  ASSERT_EQ(size["exit_code"], 0) << size.dump();
  uint64_t kept = std::stoull(size["stdout"].get<std::string>());
  EXPECT_LE(kept, kLimit);
  EXPECT_GE(kept, kLimit / 2);
  // A branch after the full one starts with the whole limit again.
  Json again = Commit(s, "rm /root/big && dd if=/dev/zero of=/root/again bs=1M count=32 && echo fits");
  EXPECT_EQ(again["exit_code"], 0) << again.dump();
  EXPECT_EQ(again["stdout"], "fits\n");
  EXPECT_TRUE(daemon_->Alive());
  EXPECT_NE(daemon_->Log().find("hit its disk limit"), std::string::npos) << "the log should say a branch hit its disk limit";
  EXPECT_NE(daemon_->Log().find(branch), std::string::npos);

  EXPECT_GT(Allocated(image_), baseline + 32 * kMiB) << "the writes should have taken space on the host";
  ASSERT_EQ(Cli({"session", "rm", s}).exit_code, 0);
  uint64_t after = WaitAllocatedAtMost(baseline + kSlack);
  EXPECT_LE(after, baseline + kSlack) << "space stays allocated after the session is gone: baseline " << baseline
                                      << ", now " << after;
}

TEST_F(DiskLimit, ASpeculatedWriteStopsAtTheLimitAndItsDiscardGivesTheSpaceBack) {
  std::string s = CreateSession();
  ASSERT_EQ(Commit(s, "true")["exit_code"], 0);
  uint64_t baseline = Allocated(image_);

  auto spec = Cli({"spec", s, "--", "dd if=/dev/zero of=/root/big bs=1M count=200"});
  ASSERT_EQ(spec.exit_code, 0) << spec.err;
  std::string branch = spec.out.substr(0, spec.out.find('\n'));
  Json b = WaitDone(branch);
  ASSERT_EQ(b["state"], "done") << b.dump();
  EXPECT_NE(b["result"]["exit_code"], 0) << b.dump();
  EXPECT_TRUE(IsSpaceError(b["result"]["stderr"])) << b.dump();
  EXPECT_LE(b["upper_bytes"].get<uint64_t>(), kLimit + kMiB) << b.dump();

  // Two branches at once each have a limit of their own.
  auto a1 = Cli({"spec", s, "--", "dd if=/dev/zero of=/a bs=1M count=40 && echo a1"});
  auto a2 = Cli({"spec", s, "--", "dd if=/dev/zero of=/a bs=1M count=40 && echo a2"});
  ASSERT_EQ(a1.exit_code, 0);
  ASSERT_EQ(a2.exit_code, 0);
  for (const auto* out : {&a1.out, &a2.out}) {
    Json r = WaitDone(out->substr(0, out->find('\n')));
    EXPECT_EQ(r["result"]["exit_code"], 0) << r.dump();
  }
  ASSERT_EQ(Cli({"abort", s}).exit_code, 0);
  uint64_t after = WaitAllocatedAtMost(baseline + kSlack);
  EXPECT_LE(after, baseline + kSlack) << "a discarded branch's writes stay allocated: baseline " << baseline
                                      << ", now " << after;
  // Nothing of it reached the head.
  EXPECT_NE(Commit(s, "test -e /root/big")["exit_code"], 0);
  EXPECT_TRUE(daemon_->Alive());
}

TEST_F(DiskLimit, ABranchUnderTheLimitIsUnaffected) {
  std::string s = CreateSession();
  auto spec = Cli({"spec", s, "--", "dd if=/dev/zero of=/root/small bs=1M count=48 2>/dev/null && echo wrote"});
  ASSERT_EQ(spec.exit_code, 0) << spec.err;
  Json hit = Commit(s, "dd if=/dev/zero of=/root/small bs=1M count=48 2>/dev/null && echo wrote");
  EXPECT_EQ(hit["hit"], true) << hit.dump();
  EXPECT_EQ(hit["exit_code"], 0) << hit.dump();
  EXPECT_EQ(hit["stdout"], "wrote\n");
  Json size = Commit(s, "stat -c %s /root/small");
  EXPECT_EQ(size["stdout"], std::to_string(48 * kMiB) + "\n") << size.dump();
  // Layers do not add up against the limit: each branch has its own.
  Json more = Commit(s, "dd if=/dev/zero of=/root/second bs=1M count=48 2>/dev/null && echo wrote");
  EXPECT_EQ(more["exit_code"], 0) << more.dump();
  EXPECT_EQ(daemon_->Log().find("hit its disk limit"), std::string::npos) << "no branch hit its limit";
}

}  // namespace
}  // namespace specula::testing
