// Crash injection at every step of apply and of revert: a child process
// applies (or reverts) with SPECULA_CRASH_AT=apply.step:N semantics (_exit(99) right
// at step N), the parent runs Recover(), and the base must then equal exactly
// the tree before the promote or the tree after it, for every N.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "tests/apply/apply_test_util.h"

namespace specula::apply {
namespace {

using testing::OverlayMount;
using testing::Sh;
using testing::Snapshot;
using testing::TempDir;
using Tree = std::map<std::string, std::string>;

// A base with a bit of everything a promote touches.
void BuildBase(const std::string& base) {
  Sh("/", "mkdir -p '" + base + "' && cd '" + base + "' && "
     "mkdir -p etc/sub var/cache/x srv/www/img bin && "
     "echo hello > etc/motd && echo old > etc/old.conf && echo '127.0.0.1 localhost' > etc/hosts && "
     "echo a > etc/sub/a && chmod 0755 etc/sub && echo owned > etc/owned && "
     "echo cache > var/cache/x/y && echo old > srv/www/old.html && echo png > srv/www/img/logo && "
     "echo data > data.txt && printf '#!/bin/sh\\n' > bin/tool && chmod 0755 bin/tool");
}

// Changes made through a real overlay, so the upper holds real whiteouts
// (char 0/0), opaque dirs and copied-up files.
constexpr const char* kMutations =
    "echo changed > etc/motd\n"
    "echo new > etc/new.conf\n"
    "rm etc/old.conf\n"
    "rm -rf var/cache\n"
    "rm -rf srv/www && mkdir srv/www && echo index > srv/www/index.html\n"
    "chmod 0750 etc/sub\n"
    "rm etc/hosts && ln -s /nowhere/hosts etc/hosts\n"
    "mkdir -p opt/app/bin && echo tool > opt/app/bin/tool && ln opt/app/bin/tool opt/app/tool2\n"
    "ln -s bin/tool opt/app/link\n"
    "chown 1234:5678 etc/owned\n"
    "rm data.txt && mkdir data.txt && echo inner > data.txt/inner\n";

struct Fixture {
  TempDir dir;
  std::string base = dir / "base", upper = dir / "upper", journal = dir / "journal";
  Tree before, after;
};

// Builds base + upper; `after` is the overlay's merged view, i.e. what the
// base must look like once the promote is complete.
void Prepare(Fixture& f) {
  BuildBase(f.base);
  f.before = Snapshot(f.base);
  OverlayMount ovl(f.base, f.upper, f.dir / "work", f.dir / "merged");
  ASSERT_TRUE(ovl.mounted()) << "overlay mount: " << std::strerror(ovl.error());
  Sh(f.dir / "merged", kMutations);
  f.after = Snapshot(f.dir / "merged");
  ovl.Unmount();
  ASSERT_EQ(f.before, Snapshot(f.base)) << "the overlay changed its lower dir";
  ASSERT_NE(f.before, f.after);
}

// Runs fn in a child; returns its exit code (99: crashed at the injected step).
template <typename Fn>
int InChild(Fn fn) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class ApplyCrashTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::EnterPrivateMountNamespace(); }
};

TEST_F(ApplyCrashTest, UninterruptedApplyEqualsMergedView) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Prepare(f));
  auto r = ApplyUpper(f.upper, f.base, {.journal_dir = f.journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Snapshot(f.base), f.after) << testing::DescribeDiff(Snapshot(f.base), f.after);
  EXPECT_GT(r->steps, 10u);
  EXPECT_EQ(r->deleted, 2u);  // etc/old.conf, var/cache (etc/hosts, data.txt are changes)
  EXPECT_TRUE(r->rejected.empty());
}

// Both durability modes: fsync per object, and one syncfs (many files).
class ApplyCrashEveryStepTest : public ApplyCrashTest,
                                public ::testing::WithParamInterface<ApplyOptions::Sync> {};

TEST_P(ApplyCrashEveryStepTest, CrashAtEveryStepOfApplyRecoversToBeforeOrAfter) {
  int ended_before = 0, ended_after = 0;
  int n = 1;
  for (; n < 1000; ++n) {
    Fixture f;
    ASSERT_NO_FATAL_FAILURE(Prepare(f));
    int code = InChild([&] {
      auto r = ApplyUpper(f.upper, f.base, {.journal_dir = f.journal, .sync = GetParam(), .crash_at = n});
      return r.ok() ? 0 : 1;
    });
    ASSERT_TRUE(code == 0 || code == 99) << "step " << n << ": child exit " << code;
    auto rec = Recover(f.journal, f.base);
    ASSERT_TRUE(rec.ok()) << "step " << n << ": " << rec.error().ToString();
    Tree now = Snapshot(f.base);
    if (now == f.before) {
      ++ended_before;
    } else if (now == f.after) {
      ++ended_after;
    } else {
      FAIL() << "crash at step " << n << " (recovery " << ToString(rec->action) << " from "
             << rec->state_found << ") left a mixed tree:\nvs before:\n"
             << testing::DescribeDiff(now, f.before) << "vs after:\n" << testing::DescribeDiff(now, f.after);
    }
    if (code == 0) break;  // N passed the last step: the apply completed
  }
  EXPECT_LT(n, 1000);
  EXPECT_GT(ended_before, 0);
  EXPECT_GT(ended_after, 1);
  std::printf("apply crash points: %d (%d recovered to before, %d to after)\n", n - 1, ended_before,
              ended_after);
}

// A crash during recovery itself: apply crashes after its commit point, then
// recovery crashes at each of its own steps; the final recovery must still
// end at the after-tree.
TEST_F(ApplyCrashTest, CrashDuringRecoveryIsRecoveredAgain) {
  // First learn how many steps a full apply takes.
  uint64_t total = 0;
  {
    Fixture f;
    ASSERT_NO_FATAL_FAILURE(Prepare(f));
    auto r = ApplyUpper(f.upper, f.base, {.journal_dir = f.journal, .crash_at = -1});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    total = r->steps;
  }
  // Crash in the middle of the rename phase (committed, partly renamed).
  const int apply_crash = static_cast<int>(total) - 8;
  int m = 1;
  for (; m < 1000; ++m) {
    Fixture f;
    ASSERT_NO_FATAL_FAILURE(Prepare(f));
    int code = InChild([&] {
      auto r = ApplyUpper(f.upper, f.base, {.journal_dir = f.journal, .crash_at = apply_crash});
      return r.ok() ? 0 : 1;
    });
    ASSERT_EQ(code, 99);
    int rcode = InChild([&] {
      auto r = Recover(f.journal, f.base, {.crash_at = m});
      return r.ok() ? 0 : 1;
    });
    ASSERT_TRUE(rcode == 0 || rcode == 99) << "recovery step " << m << ": exit " << rcode;
    auto rec = Recover(f.journal, f.base, {.crash_at = -1});
    ASSERT_TRUE(rec.ok()) << rec.error().ToString();
    Tree now = Snapshot(f.base);
    ASSERT_EQ(now, f.after) << "recovery crashed at step " << m << ":\n" << testing::DescribeDiff(now, f.after);
    if (rcode == 0) break;
  }
  EXPECT_GT(m, 2);
  std::printf("recovery crash points after apply step %d: %d\n", apply_crash, m - 1);
}

INSTANTIATE_TEST_SUITE_P(SyncModes, ApplyCrashEveryStepTest,
                         ::testing::Values(ApplyOptions::Sync::kPerFile, ApplyOptions::Sync::kSyncFs),
                         [](const ::testing::TestParamInfo<ApplyOptions::Sync>& p) {
                           return std::string(p.param == ApplyOptions::Sync::kPerFile ? "PerFile" : "SyncFs");
                         });

TEST_F(ApplyCrashTest, CrashAtEveryStepOfRevertRecoversToAfterOrBefore) {
  int ended_before = 0, ended_after = 0;
  int n = 1;
  for (; n < 1000; ++n) {
    Fixture f;
    ASSERT_NO_FATAL_FAILURE(Prepare(f));
    auto r = ApplyUpper(f.upper, f.base, {.journal_dir = f.journal, .crash_at = -1});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_EQ(Snapshot(f.base), f.after);
    int code = InChild([&] {
      Status st = Revert(f.journal, f.base, {.crash_at = n});
      return st.ok() ? 0 : 1;
    });
    ASSERT_TRUE(code == 0 || code == 99) << "step " << n << ": child exit " << code;
    auto rec = Recover(f.journal, f.base);
    ASSERT_TRUE(rec.ok()) << "step " << n << ": " << rec.error().ToString();
    Tree now = Snapshot(f.base);
    if (now == f.before) {
      ++ended_before;
    } else if (now == f.after) {
      ++ended_after;
    } else {
      FAIL() << "revert crash at step " << n << " left a mixed tree:\nvs before:\n"
             << testing::DescribeDiff(now, f.before) << "vs after:\n" << testing::DescribeDiff(now, f.after);
    }
    if (code == 0) {
      EXPECT_EQ(now, f.before) << "a completed revert must restore the before-tree";
      break;
    }
  }
  EXPECT_LT(n, 1000);
  EXPECT_GT(ended_before, 0);
  std::printf("revert crash points: %d (%d recovered to before, %d to after)\n", n - 1, ended_before,
              ended_after);
}

}  // namespace
}  // namespace specula::apply
