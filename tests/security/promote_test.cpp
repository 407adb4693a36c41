// Promote-to-base (issue 12 "Nothing stripped in silence"): the policy's
// promotion rules strip setuid/setgid bits and foreign xattrs and leave
// device nodes, fifos and sockets out of the base (tests/apply covers the
// rules and the symlink/hardlink/swap tricks on the apply itself). Here,
// through the real daemon: what was left out is listed in the commit
// result, in `branch.show` (what `specula inspect` prints) and in the
// daemon's log, and the host has exactly the safe version.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using PromoteToBase = SecurityTest;

bool HasNote(const Json& notes, const std::string& path_suffix, const std::string& action,
             const std::string& detail) {
  for (const auto& n : notes) {
    const std::string p = n.value("path", "");
    if (p.size() >= path_suffix.size() && p.compare(p.size() - path_suffix.size(), path_suffix.size(), path_suffix) == 0 &&
        n.value("action", "") == action && n.value("detail", "").find(detail) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// setuid class (a branch plants a root-owned setuid binary for later):
// the base gets the file without the bit, and a fifo not at all; neither
// happens in silence.
TEST_F(PromoteToBase, StrippedAndLeftOutEntriesAreListedInTheResultInspectAndLog) {
  std::string s = CreateSession("", "/", "base");
  const std::string d = dir_.path() + "/promoted-" + marker();
  RunOut r = Run("mkdir -p " + d + " && cp /bin/true " + d + "/suid && chmod 4755 " + d + "/suid && mkfifo " + d +
                     "/fifo && echo plain > " + d + "/plain && echo done",
                 s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out, "done\n");
  const Json& notes = r.raw["promote_notes"];
  ASSERT_TRUE(notes.is_array()) << r.raw.dump();
  EXPECT_TRUE(HasNote(notes, "/suid", "stripped", "setuid")) << notes.dump();
  EXPECT_TRUE(HasNote(notes, "/fifo", "not applied", "fifo")) << notes.dump();
  EXPECT_FALSE(HasNote(notes, "/plain", "stripped", "")) << notes.dump();

  struct stat st {};
  ASSERT_EQ(::stat((d + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & S_ISUID, 0u) << "the setuid bit reached the host";
  EXPECT_NE(::lstat((d + "/fifo").c_str(), &st), 0) << "the fifo reached the host";
  ASSERT_EQ(::stat((d + "/plain").c_str(), &st), 0);

  auto shown = Call("branch.show", {{"branch", r.raw["branch"]}});
  ASSERT_TRUE(shown.ok()) << shown.error().ToString();
  const std::string reason = (*shown)["reason"];
  EXPECT_NE(reason.find("suid (stripped: setuid bit)"), std::string::npos) << reason;
  EXPECT_NE(reason.find("fifo (not applied: fifo)"), std::string::npos) << reason;
  EXPECT_NE(daemon_->Log().find("stripped"), std::string::npos) << daemon_->Log();
}

// The audit's reproduction: a branch makes a 12,000-level directory tree
// (far past PATH_MAX, built 500 levels per `cd`) and is promoted to the
// base. The scan used to recurse once per level and overflowed the daemon's
// stack; now the promote is refused with a clear error before anything is
// applied, the daemon lives on, and the session still works.
TEST_F(PromoteToBase, ATreeDeeperThanTheLimitIsRefusedAndTheDaemonLives) {
  std::string s = CreateSession("", "/", "base");
  const std::string d = dir_.path() + "/deep-" + marker();
  std::string levels;
  for (int i = 0; i < 500; ++i) levels += "a/";
  auto r = TryRun("mkdir " + d + " && cd " + d + " && for i in $(seq 24); do mkdir -p " + levels + " && cd " +
                      levels + "; done && echo made",
                  s, 120000);
  EXPECT_TRUE(daemon_->Alive()) << daemon_->Log();
  ASSERT_FALSE(r.ok()) << "promoted a 12,000-level tree: " << r->dump();
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_NE(r.error().message().find("1024"), std::string::npos) << r.error().ToString();
  struct stat st {};
  EXPECT_NE(::lstat(d.c_str(), &st), 0) << "part of the tree reached the host";
  RunOut after = Run("echo alive", s);
  EXPECT_EQ(after.out, "alive\n");
  EXPECT_TRUE(daemon_->Alive()) << daemon_->Log();
}

// Two sessions on one base: each promote lands on the live host, so B sees
// what A promoted, and A's rollback, which would revert A's write, must not
// clobber what B wrote over it since: refused, the host keeps B's file.
TEST_F(PromoteToBase, TwoSessionsOnOneBaseNeverUndoEachOther) {
  std::string a = CreateSession("", "/", "base");
  std::string b = CreateSession("", "/", "base");
  auto shown = Call("session.show", {{"session", a}});
  ASSERT_TRUE(shown.ok()) << shown.error().ToString();
  const std::string a_root = (*shown)["head"];
  const std::string d = dir_.path() + "/shared-" + marker();
  ASSERT_EQ(Run("mkdir -p " + d + " && echo a > " + d + "/f", a).exit_code, 0);
  RunOut rb = Run("cat " + d + "/f && echo b > " + d + "/f", b);
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(rb.out, "a\n") << "B did not see A's promote";
  auto rolled = Call("session.rollback", {{"session", a}, {"checkpoint", a_root}});
  EXPECT_FALSE(rolled.ok()) << "A's rollback reverted over B's write";
  std::ostringstream now;
  now << std::ifstream(d + "/f").rdbuf();
  EXPECT_EQ(now.str(), "b\n");
}

}  // namespace
}  // namespace specula::testing
