// Promote-to-base (issue 12 "Nothing stripped in silence"): the policy's
// promotion rules strip setuid/setgid bits and foreign xattrs and leave
// device nodes, fifos and sockets out of the base (tests/apply covers the
// rules and the symlink/hardlink/swap tricks on the apply itself). Here,
// through the real daemon: what was left out is listed in the commit
// result, in `branch.show` (what `specula inspect` prints) and in the
// daemon's log, and the host has exactly the safe version.
#include <sys/stat.h>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace specula::testing
