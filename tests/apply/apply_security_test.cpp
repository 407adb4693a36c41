// The upper directory is untrusted input: symlinks planted in it or in the
// base must never redirect a write, privilege bits and foreign xattrs are
// stripped unless the policy allows them, device nodes are rejected.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <linux/capability.h>

#include <gtest/gtest.h>

#include "runtime/apply/apply.h"
#include "tests/apply/apply_test_util.h"

namespace specula::apply {
namespace {

using testing::Exists;
using testing::ReadFile;
using testing::Sh;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

class ApplySecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::EnterPrivateMountNamespace();
    ::mkdir(base.c_str(), 0755);
    ::mkdir(upper.c_str(), 0755);
    ::mkdir(outside.c_str(), 0755);
    WriteFile(outside + "/victim", "precious");
  }
  ApplyOptions Opts() const { return {.journal_dir = journal, .crash_at = -1}; }
  bool HasStagingLeftovers(const std::string& root) const {
    for (const auto& [path, desc] : Snapshot(root)) {
      if (path.find(".specula-stage.") != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir;
  std::string base = dir / "base", upper = dir / "upper", outside = dir / "outside",
              journal = dir / "journal";
};

TEST_F(ApplySecurityTest, SymlinksInUpperAreCopiedNeverFollowed) {
  // The branch made "escape" a symlink to a host dir, and a dir whose base
  // counterpart is a host symlink pointing outside.
  ASSERT_EQ(::symlink(outside.c_str(), (upper + "/escape").c_str()), 0);
  Sh(base, "ln -s '" + outside + "' d");
  WriteFile(upper + "/d/victim", "overwritten?");
  auto before_outside = Snapshot(outside);
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Snapshot(outside), before_outside);
  EXPECT_EQ(ReadFile(outside + "/victim"), "precious");
  // The base now holds the branch's objects themselves.
  struct stat st {};
  ASSERT_EQ(::lstat((base + "/escape").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat((base + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode)) << "the host's symlink was replaced, not followed";
  EXPECT_EQ(ReadFile(base + "/d/victim"), "overwritten?");
}

TEST_F(ApplySecurityTest, BaseDirSwappedForSymlinkAfterValidationIsRefused) {
  // base/d/e is a real dir at validation; the outside has an e/ too, so a
  // resolution that followed the swapped-in symlink would find a target.
  Sh(base, "mkdir -p d/e");
  Sh(outside, "mkdir -p e");
  WriteFile(upper + "/d/e/payload", "evil");
  ApplyOptions o = Opts();
  o.after_validate = [&] {
    // TOCTOU: between validation and staging the host dir becomes a symlink out.
    ASSERT_EQ(::rename((base + "/d").c_str(), (base + "/d.moved").c_str()), 0);
    ASSERT_EQ(::symlink(outside.c_str(), (base + "/d").c_str()), 0);
  };
  auto r = ApplyUpper(upper, base, o);
  ASSERT_FALSE(r.ok());
  // RESOLVE_NO_SYMLINKS refuses the symlink in the middle of d/e.
  EXPECT_EQ(r.error().sys_errno(), ELOOP) << r.error().ToString();
  EXPECT_FALSE(Exists(outside + "/e/payload"));
  EXPECT_FALSE(HasStagingLeftovers(outside));
  EXPECT_FALSE(HasStagingLeftovers(base));
  // Nothing was committed: Recover has nothing to do and the journal says aborted.
  auto rec = Recover(journal, base);
  ASSERT_TRUE(rec.ok()) << rec.error().ToString();
  EXPECT_EQ(rec->state_found, "aborted");
}

TEST_F(ApplySecurityTest, SetuidStrippedByDefaultKeptWhenAllowed) {
  WriteFile(upper + "/suid", "x", 0755);
  ASSERT_EQ(::chmod((upper + "/suid").c_str(), 06755), 0);
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((base + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(r->stripped.size(), 1u);
  EXPECT_EQ(r->stripped[0].path, "suid");

  TempDir other;
  std::string base2 = other / "base";
  ::mkdir(base2.c_str(), 0755);
  ApplyOptions allow{.journal_dir = other / "journal", .crash_at = -1};
  allow.promotion.allow_setuid = true;
  auto r2 = ApplyUpper(upper, base2, allow);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  ASSERT_EQ(::stat((base2 + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 06755u);
  EXPECT_TRUE(r2->stripped.empty());
}

TEST_F(ApplySecurityTest, DeviceNodesAndFifosRejected) {
  ASSERT_EQ(::mknod((upper + "/mem").c_str(), S_IFCHR | 0600, makedev(1, 1)), 0);
  ASSERT_EQ(::mkfifo((upper + "/fifo").c_str(), 0600), 0);
  WriteFile(upper + "/ok", "fine");
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(Exists(base + "/mem"));
  EXPECT_FALSE(Exists(base + "/fifo"));
  EXPECT_EQ(ReadFile(base + "/ok"), "fine");
  EXPECT_EQ(r->rejected.size(), 2u);

  TempDir other;
  std::string base2 = other / "base";
  ::mkdir(base2.c_str(), 0755);
  ApplyOptions strict{.journal_dir = other / "journal", .fail_on_rejected = true, .crash_at = -1};
  auto r2 = ApplyUpper(upper, base2, strict);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), Code::kPermissionDenied);
  EXPECT_TRUE(Snapshot(base2).empty()) << "nothing may be written when the apply is refused";

  TempDir third;
  std::string base3 = third / "base";
  ::mkdir(base3.c_str(), 0755);
  ApplyOptions allow{.journal_dir = third / "journal", .allow_fifos_and_sockets = true, .crash_at = -1};
  allow.promotion.allow_devices = true;
  auto r3 = ApplyUpper(upper, base3, allow);
  ASSERT_TRUE(r3.ok()) << r3.error().ToString();
  struct stat st {};
  ASSERT_EQ(::lstat((base3 + "/mem").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 1));
  ASSERT_EQ(::lstat((base3 + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// A minimal valid security.capability value (VFS_CAP_REVISION_2, CAP_NET_RAW).
std::string NetRawCap() {
  struct vfs_cap_data cap {};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  return std::string(reinterpret_cast<const char*>(&cap), sizeof(cap));
}

bool HasXattr(const std::string& path, const char* name) {
  return ::lgetxattr(path.c_str(), name, nullptr, 0) >= 0;
}

TEST_F(ApplySecurityTest, ForeignXattrsAndFileCapsStrippedUserKept) {
  std::string f = upper + "/bin";
  WriteFile(f, "binary", 0755);
  ASSERT_EQ(::setxattr(f.c_str(), "user.keep", "1", 1, 0), 0);
  ASSERT_EQ(::setxattr(f.c_str(), "trusted.evil", "1", 1, 0), 0);
  std::string cap = NetRawCap();
  ASSERT_EQ(::setxattr(f.c_str(), "security.capability", cap.data(), cap.size(), 0), 0)
      << std::strerror(errno);
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(HasXattr(base + "/bin", "user.keep"));
  EXPECT_FALSE(HasXattr(base + "/bin", "trusted.evil"));
  EXPECT_FALSE(HasXattr(base + "/bin", "security.capability"));
  EXPECT_EQ(r->stripped.size(), 2u);

  TempDir other;
  std::string base2 = other / "base";
  ::mkdir(base2.c_str(), 0755);
  ApplyOptions allow{.journal_dir = other / "journal", .crash_at = -1};
  allow.promotion.allow_file_caps = true;
  allow.promotion.allow_xattrs = true;
  auto r2 = ApplyUpper(upper, base2, allow);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_TRUE(HasXattr(base2 + "/bin", "trusted.evil"));
  EXPECT_TRUE(HasXattr(base2 + "/bin", "security.capability"));
}

TEST_F(ApplySecurityTest, UpperMayNotWriteIntoOrReplaceTheJournal) {
  // The journal lives inside the base: the upper must not reach it.
  std::string jdir = base + "/state/journal";
  ::mkdir((base + "/state").c_str(), 0755);
  WriteFile(upper + "/state/journal/pre/0", "forged");
  auto r = ApplyUpper(upper, base, {.journal_dir = jdir, .crash_at = -1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied) << r.error().ToString();

  // Replacing an ancestor (opaque dir or file over it) is refused too.
  std::filesystem::remove_all(upper + "/state");
  WriteFile(upper + "/state", "a file where the journal's parent is");
  auto r2 = ApplyUpper(upper, base, {.journal_dir = base + "/state/journal2", .crash_at = -1});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), Code::kPermissionDenied) << r2.error().ToString();
}

TEST_F(ApplySecurityTest, UpperMayWriteBesideTheJournalInItsAncestors) {
  // A branch over a base "/" that writes /var/log/x while the journal is under
  // /var/lib: merging into the journal's ancestors is an ordinary promote.
  std::string jdir = base + "/state/lib/journal";
  std::filesystem::create_directories(base + "/state/lib");
  WriteFile(upper + "/state/log.txt", "beside the journal");
  WriteFile(upper + "/state/lib/other", "a sibling of the journal");
  auto r = ApplyUpper(upper, base, {.journal_dir = jdir, .crash_at = -1});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ReadFile(base + "/state/log.txt"), "beside the journal");
  EXPECT_EQ(ReadFile(base + "/state/lib/other"), "a sibling of the journal");
}

TEST_F(ApplySecurityTest, MountPointsAndOtherFilesystemsRefusedBeforeCommit) {
  // base/mnt is a mount point: replacing it, or writing below it (another
  // filesystem than the journal's), must fail before anything is renamed.
  ::mkdir((base + "/mnt").c_str(), 0755);
  ASSERT_EQ(::mount("tmpfs", (base + "/mnt").c_str(), "tmpfs", 0, "size=1m"), 0);
  WriteFile(base + "/mnt/inside", "kept");
  WriteFile(upper + "/mnt/inside", "new");
  WriteFile(upper + "/top", "top");
  auto before = Snapshot(base);
  auto r = ApplyUpper(upper, base, Opts());
  EXPECT_FALSE(r.ok());
  if (!r.ok()) {
    EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().ToString();
  }
  EXPECT_EQ(Snapshot(base), before);

  std::filesystem::remove_all(upper + "/mnt");
  WriteFile(upper + "/mnt", "a file over a mount point");
  auto r2 = ApplyUpper(upper, base, {.journal_dir = dir / "journal2", .crash_at = -1});
  EXPECT_FALSE(r2.ok());
  if (!r2.ok()) {
    EXPECT_NE(r2.error().message().find("mount point"), std::string::npos) << r2.error().ToString();
  }
  EXPECT_EQ(Snapshot(base), before);
  ::umount2((base + "/mnt").c_str(), MNT_DETACH);
}

TEST_F(ApplySecurityTest, OwnersModesTimesAndHardlinksPreserved) {
  WriteFile(upper + "/dir/a", "shared", 0640);
  ASSERT_EQ(::chown((upper + "/dir/a").c_str(), 1001, 1002), 0);
  ASSERT_EQ(::link((upper + "/dir/a").c_str(), (upper + "/b").c_str()), 0);
  ASSERT_EQ(::chmod((upper + "/dir").c_str(), 0710), 0);
  ASSERT_EQ(::symlink("../b", (upper + "/dir/l").c_str()), 0);
  ASSERT_EQ(::lchown((upper + "/dir/l").c_str(), 7, 8), 0);
  struct timespec ts[2] = {{1000000000, 5}, {1234567890, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (upper + "/dir/a").c_str(), ts, 0), 0);
  auto r = ApplyUpper(upper, base, Opts());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  struct stat a {}, b {}, d {}, l {};
  ASSERT_EQ(::lstat((base + "/dir/a").c_str(), &a), 0);
  ASSERT_EQ(::lstat((base + "/b").c_str(), &b), 0);
  ASSERT_EQ(::lstat((base + "/dir").c_str(), &d), 0);
  ASSERT_EQ(::lstat((base + "/dir/l").c_str(), &l), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hardlinks within the upper stay hardlinks";
  EXPECT_EQ(a.st_mode & 07777, 0640u);
  EXPECT_EQ(a.st_uid, 1001u);
  EXPECT_EQ(a.st_gid, 1002u);
  EXPECT_EQ(a.st_mtim.tv_sec, 1234567890);
  EXPECT_EQ(a.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(d.st_mode & 07777, 0710u);
  EXPECT_EQ(l.st_uid, 7u);
  EXPECT_EQ(std::filesystem::read_symlink(base + "/dir/l").string(), "../b");
  EXPECT_EQ(r->added, 2u);
  EXPECT_EQ(r->bytes, 6u);
}

}  // namespace
}  // namespace specula::apply
