// ShellState's stored form, its validation, and the action wrapper's state
// capture (run with the host's bash, no sandbox needed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/spawn.h"
#include "sandbox/action_script.h"
#include "sandbox/sandbox.h"

namespace specula::sandbox {
namespace {

ShellState Sample() {
  ShellState s;
  s.cwd = "/tmp/a dir\nwith newline";
  s.umask = 077;
  s.env = "declare -x A=\"1\"\n";
  s.variables = "declare -- B=$'x\\ny'\n";
  s.functions = "f () \n{ \n    echo hi\n}\n";
  s.aliases = "alias ll='ls -l'\n";
  s.options = "set -o pipefail\nshopt -s extglob\n";
  return s;
}

TEST(ShellStateTest, RoundTripsExactly) {
  ShellState s = Sample();
  auto parsed = ShellState::Parse(s.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, s);
  auto def = ShellState::Parse(ShellState{}.Serialize());
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(*def, ShellState{});
}

TEST(ShellStateTest, RejectsDamagedText) {
  const std::string good = Sample().Serialize();
  EXPECT_FALSE(ShellState::Parse("").ok());
  EXPECT_FALSE(ShellState::Parse("garbage\n").ok());
  EXPECT_FALSE(ShellState::Parse(good.substr(0, good.size() - 5)).ok()) << "truncated";
  std::string longer = good;
  longer.replace(longer.find("cwd 2"), 5, "cwd 9");
  EXPECT_FALSE(ShellState::Parse(longer).ok()) << "length mismatch";
  EXPECT_FALSE(ShellState::Parse(good + "cwd 1\n/\n").ok()) << "duplicate field";
  EXPECT_FALSE(ShellState::Parse(good + "bogus 0\n\n").ok()) << "unknown field";
  std::string no_umask = good;
  no_umask.replace(no_umask.find("umask 4\n0077"), 12, "umask 4\n0999");
  EXPECT_FALSE(ShellState::Parse(no_umask).ok()) << "non-octal umask";
  auto err = ShellState::Parse("x");
  EXPECT_EQ(err.error().code(), Code::kDataLoss);
}

TEST(ShellStateTest, ValidateChecksFields) {
  ShellState s;
  EXPECT_TRUE(s.Validate().ok());
  s.cwd = "relative";
  EXPECT_FALSE(s.Validate().ok());
  s = ShellState{};
  s.umask = 01000;
  EXPECT_FALSE(s.Validate().ok());
  s = ShellState{};
  s.options = "set -o pipefail\nrm -rf /\n";
  EXPECT_FALSE(s.Validate().ok()) << "options may only hold set/shopt lines";
  s = ShellState{};
  s.env = std::string("declare -x A=\"") + '\0' + "\"";
  EXPECT_FALSE(s.Validate().ok());
}

TEST(ShellStateTest, CapturedStateNeedsEndMarker) {
  EXPECT_FALSE(ParseCapturedState("", "tok").ok());
  EXPECT_FALSE(ParseCapturedState("@@specula:tok:cwd\n/\n", "tok").ok());
  auto ok = ParseCapturedState(
      "@@specula:tok:options\nset -o pipefail\n@@specula:tok:cwd\n/x\n@@specula:tok:umask\n0022\n"
      "@@specula:tok:vars\ndeclare -x A=\"1\"\ndeclare -- B=\"2\"\ndeclare -ir BASHPID=\"7\"\n"
      "@@specula:tok:functions\n@@specula:tok:aliases\n@@specula:tok:end\n",
      "tok");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->cwd, "/x");
  EXPECT_EQ(ok->env, "declare -x A=\"1\"\n");
  EXPECT_EQ(ok->variables, "declare -- B=\"2\"\n");
  // A marker with another token is just text, inside a section it is data.
  EXPECT_FALSE(ParseCapturedState("@@specula:other:end\n", "tok").ok());
}

// Runs one action's wrapper with the host's bash and returns the new state.
Result<ShellState> RunWrapper(const ShellState& in, const std::string& command, int* exit_code,
                              std::string* out = nullptr) {
  char tmpl[] = "/tmp/specula-shell-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Error::FromErrno("mkdtemp");
  std::string dir = tmpl;
  std::string state = dir + "/state";
  {
    std::ofstream script(dir + "/run.sh");
    script << BuildActionScript(in, command, state, "t0k");
  }
  SpawnOptions o;
  o.argv = {"bash", "--noprofile", "--norc", "-c", ActionShellProgram(dir + "/run.sh")};
  o.clear_env = true;
  o.env_set = {"PATH=/usr/bin:/bin"};
  auto r = Spawn(o);
  std::string text;
  {
    std::ifstream f(state);
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  std::filesystem::remove_all(dir);
  if (!r.ok()) return r.error();
  *exit_code = r->exit_code;
  if (out) *out = r->out;
  return ParseCapturedState(text, "t0k");
}

TEST(ShellStateTest, WrapperCarriesStateAcrossRuns) {
  int code = -1;
  auto s1 = RunWrapper(ShellState{},
                       "cd /usr && export A='a b' && B=$'two\\nlines' && f() { echo \"fn $1\"; } && "
                       "alias hi='echo aliased' && umask 027 && set -o pipefail && arr=(x 'y z')",
                       &code);
  ASSERT_TRUE(s1.ok()) << s1.error().ToString();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(s1->cwd, "/usr");
  EXPECT_EQ(s1->umask, 027u);
  EXPECT_NE(s1->env.find("A=\"a b\""), std::string::npos) << s1->env;
  EXPECT_NE(s1->variables.find("B=$'two\\nlines'"), std::string::npos) << s1->variables;
  EXPECT_EQ(s1->variables.find("__specula"), std::string::npos);
  EXPECT_EQ(s1->variables.find("BASH_VERSINFO"), std::string::npos);

  std::string out;
  auto s2 = RunWrapper(*s1, "echo \"$PWD|$A|$B\"; f 1; hi; umask; [[ -o pipefail ]] && echo pipefail-on; echo ${arr[1]}", &code, &out);
  ASSERT_TRUE(s2.ok()) << s2.error().ToString();
  EXPECT_EQ(out, "/usr|a b|two\nlines\nfn 1\naliased\n0027\npipefail-on\ny z\n");
  EXPECT_EQ(*s2, *s1) << "a read-only action leaves the state unchanged";
}

TEST(ShellStateTest, ExitAndErrexitStillCaptureState) {
  int code = -1;
  auto s = RunWrapper(ShellState{}, "cd /etc; X=1; exit 3", &code);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(code, 3);
  EXPECT_EQ(s->cwd, "/etc");
  ShellState errexit;
  errexit.options = "set -o errexit\n";
  s = RunWrapper(errexit, "cd /usr; false; cd /", &code);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(code, 1);
  EXPECT_EQ(s->cwd, "/usr");
}

TEST(ShellStateTest, UserAliasesCannotHijackTheWrapper) {
  ShellState s;
  s.aliases = "alias cd='echo hijacked'\nalias eval='echo hijacked'\nalias printf='echo hijacked'\n";
  s.cwd = "/usr";
  int code = -1;
  std::string out;
  auto r = RunWrapper(s, "builtin pwd", &code, &out);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(out, "/usr\n");
  EXPECT_EQ(r->cwd, "/usr");
}

}  // namespace
}  // namespace specula::sandbox
