// Upper directories shaped to break the promote rather than to write through
// it: names that are not UTF-8 (the journal is JSON), sparse files that are
// tiny in the branch and huge on the host, and attribute changes of a
// directory that is another filesystem's mount point in the base. Each was
// an attack from inside a branch that worked (an audit, 2026-12-07). And an
// operator's immutable directory, whose refusal said only EPERM.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "runtime/apply/journal.h"
#include "tests/apply/apply_test_util.h"

namespace specula::apply {
namespace {

using testing::Exists;
using testing::ReadFile;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

class ApplyHostileUpperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::EnterPrivateMountNamespace();
    ::mkdir(base.c_str(), 0755);
    ::mkdir(upper.c_str(), 0755);
  }
  ApplyOptions Opts() const { return {.journal_dir = journal, .crash_at = -1}; }

  TempDir dir;
  std::string base = dir / "base", upper = dir / "upper", journal = dir / "journal";
};

// A file name is bytes, not text. Before the fix the journal's JSON writer
// threw on the first name that was not UTF-8, after the commit point: the
// RPC said `internal`, the base held half a promote, and every restart of
// the daemon died in crash recovery (Recover -> RollForward -> throw).
TEST_F(ApplyHostileUpperTest, NamesThatAreNotUtf8AreAppliedJournaledAndReverted) {
  WriteFile(base + "/kept", "base");
  auto before = Snapshot(base);
  const std::string bad = "\xff\xfe-not-utf8";
  ASSERT_EQ(::mkdir((upper + "/u8").c_str(), 0755), 0);
  WriteFile(upper + "/u8/" + bad, "inside a new dir");  // in a put's subtree record
  WriteFile(upper + "/" + bad, "a top-level op path");   // an op's own path
  WriteFile(upper + "/u8/%41", "a name with the escape character");

  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ReadFile(base + "/u8/" + bad), "inside a new dir");
  EXPECT_EQ(ReadFile(base + "/" + bad), "a top-level op path");
  EXPECT_EQ(ReadFile(base + "/u8/%41"), "a name with the escape character");
  EXPECT_FALSE(Exists(base + "/u8/A")) << "an escaped name must not decode a literal '%41'";

  // The journal reads back (recovery after a restart), and the promote is
  // revertible name for name.
  auto rec = Recover(journal, base);
  ASSERT_TRUE(rec.ok()) << rec.error().ToString();
  Status rv = Revert(journal, base);
  ASSERT_TRUE(rv.ok()) << rv.ToString();
  EXPECT_EQ(Snapshot(base), before) << testing::DescribeDiff(before, Snapshot(base));
}

// A 1 GiB file with 4 KiB of data costs 4 KiB in the branch (its disk limit
// sees 4 KiB) but was written out in full on the host: any branch could
// fill the host's disk through a promote.
TEST_F(ApplyHostileUpperTest, SparseFilesStaySparseOnTheBase) {
  constexpr off_t kSize = off_t{1} << 30;
  constexpr off_t kDataAt = off_t{512} << 20;
  const std::string data(4096, 'd');
  {
    int fd = ::open((upper + "/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kSize), 0);
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), kDataAt), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(::pwrite(fd, "end", 3, kSize - 3), 3);  // data right at the end too
    ::close(fd);
  }
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();

  struct stat st {};
  ASSERT_EQ(::stat((base + "/sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, kSize);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{16} << 20)
      << "the holes were written out: " << st.st_blocks * 512 << " bytes allocated";
  int fd = ::open((base + "/sparse").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string got(data.size(), '\0'), head(4096, 'x'), tail(3, '\0');
  EXPECT_EQ(::pread(fd, got.data(), got.size(), kDataAt), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(::pread(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  EXPECT_EQ(::pread(fd, tail.data(), tail.size(), kSize - 3), 3);
  ::close(fd);
  EXPECT_EQ(got, data);
  EXPECT_EQ(head, std::string(4096, '\0'));
  EXPECT_EQ(tail, "end");
}

// base/mnt is another filesystem's root. Inside the branch it is a plain
// directory, and `chmod 1777 /mnt; chown 123:456 /mnt` made the promote set
// the mount's root attributes after the commit point (docs/promote.md: other
// filesystems are refused); on a read-only mount the failure came after the
// commit, so the daemon could not start again. Refused before the commit.
TEST_F(ApplyHostileUpperTest, AttributesOfAMountPointAreRefusedBeforeCommit) {
  ASSERT_EQ(::mkdir((base + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", (base + "/mnt").c_str(), "tmpfs", 0, "size=1m,mode=0755"), 0);
  WriteFile(upper + "/top", "top");
  ASSERT_EQ(::mkdir((upper + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((upper + "/mnt").c_str(), 01777), 0);
  ASSERT_EQ(::chown((upper + "/mnt").c_str(), 123, 456), 0);
  auto before = Snapshot(base);

  auto r = ApplyUpper(upper, base, Opts());
  EXPECT_FALSE(r.ok());
  if (!r.ok()) {
    EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
    EXPECT_NE(r.error().ToString().find("mount point"), std::string::npos) << r.error().ToString();
  }
  struct stat st {};
  ASSERT_EQ(::stat((base + "/mnt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_FALSE(Exists(base + "/top")) << "nothing of the promote may land";
  EXPECT_EQ(Snapshot(base), before);

  // A directory below the mount point: the same filesystem as its parent,
  // another one than the base's.
  ASSERT_EQ(::mkdir((base + "/mnt/sub").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((upper + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(::chown((upper + "/mnt").c_str(), 0, 0), 0);
  ASSERT_EQ(::mkdir((upper + "/mnt/sub").c_str(), 0700), 0);
  ASSERT_EQ(::stat((base + "/mnt").c_str(), &st), 0);
  struct timespec same[2] = {{0, UTIME_OMIT}, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (upper + "/mnt").c_str(), same, 0), 0);
  before = Snapshot(base);
  auto r2 = ApplyUpper(upper, base, {.journal_dir = dir / "journal2", .crash_at = -1});
  EXPECT_FALSE(r2.ok());
  if (!r2.ok()) {
    EXPECT_EQ(r2.error().code(), Code::kFailedPrecondition) << r2.error().ToString();
    EXPECT_NE(r2.error().ToString().find("mnt/sub is on another filesystem"), std::string::npos)
        << r2.error().ToString();
  }
  ASSERT_EQ(::stat((base + "/mnt/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(Exists(base + "/top"));
  EXPECT_EQ(Snapshot(base), before);
  ::umount2((base + "/mnt").c_str(), MNT_DETACH);
}

// What a journal holds decides renames after a restart: version 2 decodes
// its escapes exactly, refuses a broken one, and a version 1 journal (an
// older daemon's, paths raw) still reads as it was written.
// Sets or clears FS_IMMUTABLE_FL on a directory (chattr +i / -i).
bool SetImmutable(const std::string& path, bool on) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  ::close(fd);
  return ok;
}

// An operator's immutable directory on the base (chattr +i): a branch may
// change a file in it (the overlay copies the file up; chmod of a file in
// an immutable directory works on the host too), but the promote stages
// its copy beside it, which the directory refuses. The commit fails whole,
// before anything is written, and says why and what to do (it said only
// "Operation not permitted").
TEST_F(ApplyHostileUpperTest, AnImmutableDirectoryOnTheBaseIsNamedInTheRefusal) {
  WriteFile(base + "/locked/a", "base", 0644);
  WriteFile(base + "/free", "base");
  WriteFile(upper + "/locked/a", "base", 0600);
  WriteFile(upper + "/free", "changed");
  if (!SetImmutable(base + "/locked", true)) GTEST_SKIP() << "no FS_IOC_SETFLAGS on " << base;
  auto before = Snapshot(base);
  auto r = ApplyUpper(upper, base, Opts());
  EXPECT_TRUE(SetImmutable(base + "/locked", false));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied) << r.error().ToString();
  EXPECT_NE(r.error().ToString().find("locked is immutable"), std::string::npos) << r.error().ToString();
  EXPECT_NE(r.error().ToString().find("chattr -i"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(Snapshot(base), before) << testing::DescribeDiff(before, Snapshot(base));
}

TEST_F(ApplyHostileUpperTest, JournalPathsDecodeExactlyAndOldJournalsStillRead) {
  ASSERT_EQ(::mkdir(journal.c_str(), 0700), 0);
  auto read = [&](const std::string& version, const std::string& path) {
    WriteFile(journal + "/journal", R"({"version":)" + version + R"(,"id":"j","state":"done","base":[1,2],)" +
                                        R"("ops":[{"kind":"delete","path":")" + path + R"(","post":null}]})");
    UniqueFd d(::open(journal.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return ReadJournal(d.get());
  };
  auto v2 = read("2", "a/%FF%25b%2541");
  ASSERT_TRUE(v2.ok() && v2->has_value()) << (v2.ok() ? "no journal" : v2.error().ToString());
  EXPECT_EQ((*v2)->ops.at(0).path, "a/\xff%b%41");
  auto v1 = read("1", "a/%FFb");
  ASSERT_TRUE(v1.ok() && v1->has_value()) << (v1.ok() ? "no journal" : v1.error().ToString());
  EXPECT_EQ((*v1)->ops.at(0).path, "a/%FFb");
  for (const char* bad : {"a%F", "a%GG", "%"}) {
    auto r = read("2", bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), Code::kDataLoss) << bad;
    }
  }
  auto slash = read("2", "a%2F..%2Fb");  // an escaped '/' still meets the path check
  EXPECT_FALSE(slash.ok() && slash->has_value() && (*slash)->ops.at(0).path == "a/../b");
}

}  // namespace
}  // namespace specula::apply
