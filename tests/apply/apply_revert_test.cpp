// Whiteouts and opaque dirs from a real overlay, revert from pre-images, and
// revert refused after a host change.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "tests/apply/apply_test_util.h"

namespace specula::apply {
namespace {

using testing::Exists;
using testing::OverlayMount;
using testing::ReadFile;
using testing::Sh;
using testing::Snapshot;
using testing::TempDir;

class ApplyRevertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::EnterPrivateMountNamespace();
    Sh("/", "mkdir -p '" + base + "' && cd '" + base + "' && mkdir -p keep gone www/sub && "
            "echo k > keep/file && echo bye > keep/old && echo g > gone/x && "
            "echo page > www/page && echo s > www/sub/s && echo v1 > conf");
  }
  // Mutates through a real overlay and returns the merged view.
  std::map<std::string, std::string> Mutate(const std::string& script) {
    OverlayMount ovl(base, upper, dir / "work", dir / "merged");
    EXPECT_TRUE(ovl.mounted()) << std::strerror(ovl.error());
    Sh(dir / "merged", script);
    return Snapshot(dir / "merged");
  }

  TempDir dir;
  std::string base = dir / "base", upper = dir / "upper", journal = dir / "journal";
};

TEST_F(ApplyRevertTest, WhiteoutsDeleteAndKeepPreImages) {
  auto merged = Mutate("rm keep/old && rm -rf gone");
  struct stat st {};
  ASSERT_EQ(::lstat((upper + "/gone").c_str(), &st), 0);
  ASSERT_TRUE(S_ISCHR(st.st_mode)) << "expected a real overlay whiteout";
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->deleted, 2u);
  EXPECT_FALSE(Exists(base + "/keep/old"));
  EXPECT_FALSE(Exists(base + "/gone"));
  EXPECT_EQ(Snapshot(base), merged);
  // The deleted originals were moved (same inode data) into the journal.
  auto pre = Snapshot(journal + "/pre");
  EXPECT_EQ(pre.size(), 3u);  // keep/old, gone, gone/x
}

TEST_F(ApplyRevertTest, OpaqueDirReplacesWholeDir) {
  auto merged = Mutate("rm -rf www && mkdir www && echo new > www/index");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(Exists(base + "/www/page"));
  EXPECT_FALSE(Exists(base + "/www/sub"));
  EXPECT_EQ(ReadFile(base + "/www/index"), "new\n");
  EXPECT_EQ(Snapshot(base), merged);
}

TEST_F(ApplyRevertTest, RevertRestoresReplacedCreatedAndDeleted) {
  auto before = Snapshot(base);
  auto merged = Mutate("echo v2 > conf && echo n > keep/new && rm keep/old && rm -rf www && "
                       "mkdir www && chmod 0700 keep");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(Snapshot(base), merged);
  Status st = Revert(journal, base);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Snapshot(base), before) << testing::DescribeDiff(Snapshot(base), before);
  // Reverting twice is a no-op, and the journal can then be discarded.
  EXPECT_TRUE(Revert(journal, base).ok());
  EXPECT_TRUE(DiscardJournal(journal).ok());
  EXPECT_FALSE(Exists(journal));
}

TEST_F(ApplyRevertTest, RevertRefusedAfterHostChangeAndChangesNothing) {
  Mutate("echo v2 > conf && echo n > keep/new && rm keep/old");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // The host edits a promoted file in place afterwards.
  Sh(base, "echo host-edit >> keep/new");
  auto now = Snapshot(base);
  Status st = Revert(journal, base);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(st.error().message().find("keep/new"), std::string::npos) << st.ToString();
  EXPECT_EQ(Snapshot(base), now);

  // A re-created deleted path is a host change too.
  Sh(base, "echo back > keep/old");
  Status st2 = Revert(journal, base);
  ASSERT_FALSE(st2.ok());
  EXPECT_NE(st2.error().message().find("keep/old (re-created)"), std::string::npos) << st2.ToString();
}

TEST_F(ApplyRevertTest, RevertRefusedAfterHostChangeInsideANewDirectory) {
  Mutate("mkdir -p newdir/deep && echo a > newdir/deep/file && echo b > newdir/other");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // Rewriting a file deep inside keeps every directory's mtime: only the
  // per-entry record catches it.
  Sh(base, "echo host > newdir/deep/file");
  Status st = Revert(journal, base);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(st.error().message().find("newdir/deep/file"), std::string::npos) << st.ToString();
  EXPECT_EQ(ReadFile(base + "/newdir/deep/file"), "host\n");
}

TEST_F(ApplyRevertTest, JournalOfAnotherBaseIsRefused) {
  Mutate("echo v2 > conf");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  Status st = Revert(journal, dir / "upper");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  // A journal dir in use cannot be reused for another apply.
  auto again = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
}

TEST_F(ApplyRevertTest, CorruptJournalIsDataLossNotAGuess) {
  Mutate("echo v2 > conf");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto after = Snapshot(base);
  testing::WriteFile(journal + "/journal", "{\"version\":1,\"state\":\"committed\",", 0600);
  auto rec = Recover(journal, base);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code(), Code::kDataLoss) << rec.error().ToString();
  Status st = Revert(journal, base);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kDataLoss);
  EXPECT_EQ(Snapshot(base), after);
}

TEST_F(ApplyRevertTest, JournalPathsThatEscapeAreRejected) {
  Mutate("echo v2 > conf");
  auto r = ApplyUpper(upper, base, {.journal_dir = journal, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // A tampered journal must not steer a rename outside the base.
  std::string text = testing::ReadFile(journal + "/journal");
  auto pos = text.find("\"conf\"");
  ASSERT_NE(pos, std::string::npos) << text;
  text.replace(pos, 6, "\"../x\"");
  testing::WriteFile(journal + "/journal", text, 0600);
  Status st = Revert(journal, base);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kDataLoss) << st.ToString();
}

}  // namespace
}  // namespace specula::apply
