// Command and output analysis: programs, written and edited files,
// operands, numbers, read-only classification, output paths, grep line
// numbers, missing modules, task quotes.
#include "speculators/features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace specula::speculators {
namespace {

using ::testing::ElementsAre;

TEST(AnalyzeCommandTest, CdPrefixAndProgram) {
  auto c = AnalyzeCommand("  cd /testbed && python test_fix.py 2>&1 | tail -20 ");
  EXPECT_EQ(c.text, "cd /testbed && python test_fix.py 2>&1 | tail -20");
  EXPECT_EQ(c.cd_dir, "/testbed");
  EXPECT_EQ(c.prog, "python-file");
  EXPECT_EQ(c.kind, "python-file|tail:.py");
  EXPECT_THAT(c.paths, ElementsAre("test_fix.py"));
  EXPECT_TRUE(c.written.empty());  // 2>&1 is not a file
  EXPECT_FALSE(c.read_only);       // running a script may write
}

TEST(AnalyzeCommandTest, HereDocumentWrite) {
  auto c = AnalyzeCommand("cat > /tmp/repro.py << 'EOF'\nimport os\nprint(open('x.txt').read())\nEOF\npython /tmp/repro.py");
  EXPECT_TRUE(c.heredoc);
  EXPECT_EQ(c.prog, "write");
  EXPECT_EQ(c.kind, "write+run:.py");
  EXPECT_THAT(c.written, ElementsAre("/tmp/repro.py"));
  // The body's x.txt is not an operand; the run after EOF is.
  EXPECT_THAT(c.paths, ElementsAre("/tmp/repro.py"));
  EXPECT_FALSE(c.read_only);
  auto d = AnalyzeCommand("cat <<-EOF > notes.txt\n\thello\n\tEOF");
  EXPECT_TRUE(d.heredoc);
  EXPECT_THAT(d.written, ElementsAre("notes.txt"));
}

// Found by the sse_fuzzer campaign (2026-12-06): the `write` program
// (write(1), a message to a user) took the here-document "write" path and
// read the first written file of an empty list.
TEST(AnalyzeCommandTest, TheWriteProgramIsNotAHereDocumentWrite) {
  auto c = AnalyzeCommand("write \r\r\x10\r\r\x10\r\r\xfar");
  EXPECT_TRUE(c.written.empty());
  auto d = AnalyzeCommand("write alice pts/1");
  EXPECT_EQ(d.prog, "write");
  EXPECT_TRUE(d.written.empty());
  EXPECT_FALSE(d.heredoc);
}

TEST(AnalyzeCommandTest, EditedFilesAndRedirects) {
  EXPECT_THAT(AnalyzeCommand("sed -i 's/a/b/' src/x.py").edited, ElementsAre("src/x.py"));
  EXPECT_THAT(AnalyzeCommand("cp a.py a.py.backup").edited, ElementsAre("a.py.backup"));
  auto g = AnalyzeCommand("git diff -- django/conf/global_settings.py > patch.txt");
  EXPECT_EQ(g.prog, "git-diff");
  EXPECT_THAT(g.written, ElementsAre("patch.txt"));
  EXPECT_FALSE(g.read_only);
  EXPECT_TRUE(AnalyzeCommand("git diff -- a.py").read_only);
  EXPECT_TRUE(AnalyzeCommand("echo hi > /dev/null").written.empty());
}

TEST(AnalyzeCommandTest, PatternsAreNotOperands) {
  auto c = AnalyzeCommand(R"(grep -n "os.path" ./lib/util.py | head -5)");
  EXPECT_EQ(c.prog, "grep");
  EXPECT_THAT(c.paths, ElementsAre("./lib/util.py"));
  EXPECT_TRUE(c.read_only);
  auto s = AnalyzeCommand("sed -n '120,180p' pkg/mod.py");
  EXPECT_EQ(s.prog, "sed-n");
  EXPECT_THAT(s.numbers, ElementsAre(120, 180));
  EXPECT_THAT(s.paths, ElementsAre("pkg/mod.py"));
  EXPECT_TRUE(s.read_only);
}

TEST(AnalyzeCommandTest, ProgramsBehindWrappersAndSubcommands) {
  EXPECT_EQ(AnalyzeCommand("FOO=1 timeout 10 python -m pytest -x tests").prog, "python-m-pytest");
  EXPECT_EQ(AnalyzeCommand("pip install -q requests").prog, "pip-install");
  EXPECT_EQ(AnalyzeCommand("git -C repo status").prog, "git-status");
  EXPECT_EQ(AnalyzeCommand("# look first\nls -la").prog, "ls");
  EXPECT_FALSE(AnalyzeCommand("find . -name '*.pyc' -delete").read_only);
  EXPECT_TRUE(AnalyzeCommand("find . -name '*.py' -exec grep -l x {} \\;").read_only);
  EXPECT_FALSE(AnalyzeCommand("find . -name '*.py' | xargs rm").read_only);
}

TEST(AnalyzeCommandTest, NeverFailsOnOddInput) {
  for (const char* s : {"", "'", "\"unterminated", "<<", "a | | b", ">", "cat <<EOF", "\\", "&&&&", "2>&"}) {
    auto c = AnalyzeCommand(s);
    EXPECT_FALSE(c.prog.empty()) << s;
  }
}

TEST(AnalyzeOutputTest, StatusPathsAndLineNumbers) {
  Step s;
  s.command = "grep -rn foo .";
  s.stdout_text = "./a/b.py:12:foo()\n./a/c.py:40:  foo = 1\n";
  auto o = AnalyzeOutput(s, AnalyzeCommand(s.command));
  EXPECT_EQ(o.status, "ok");
  EXPECT_THAT(o.paths, ElementsAre("./a/b.py", "./a/c.py"));
  EXPECT_THAT(o.line_numbers, ElementsAre(12, 40));

  Step e;
  e.command = "python t.py";
  e.exit_code = 1;
  e.stderr_text = "Traceback (most recent call last):\n  File \"/testbed/t.py\", line 1\nModuleNotFoundError: No module named 'yaml.loader'\n";
  auto oe = AnalyzeOutput(e, AnalyzeCommand(e.command));
  EXPECT_EQ(oe.status, "nomod");
  EXPECT_EQ(oe.missing_module, "yaml");
  ASSERT_FALSE(oe.paths.empty());
  EXPECT_EQ(oe.paths[0], "/testbed/t.py");

  Step empty;
  empty.command = "true";
  EXPECT_EQ(AnalyzeOutput(empty, AnalyzeCommand("true")).status, "empty");
  Step unknown;
  unknown.has_outcome = false;
  EXPECT_EQ(AnalyzeOutput(unknown, AnalyzeCommand("x")).status, "?");
}

TEST(AnalyzeOutputTest, LsEntriesAreNames) {
  Step s;
  s.command = "ls -la";
  s.stdout_text = "total 8\ndrwxr-xr-x 2 root root 4096 . \ndrwxr-xr-x 2 root root 4096 ..\n-rw-r--r-- 1 root root 10 setup.py\ndrwxr-xr-x 2 root root 4096 tests/\n";
  auto o = AnalyzeOutput(s, AnalyzeCommand(s.command));
  EXPECT_THAT(o.paths, ElementsAre("setup.py", "tests"));
}

TEST(FeaturesTest, PathLikeAndTaskQuotes) {
  EXPECT_TRUE(PathLike("src/a.py"));
  EXPECT_TRUE(PathLike("notes.txt"));
  EXPECT_FALSE(PathLike("1.2.3"));
  EXPECT_FALSE(PathLike("s/a/b/"));
  EXPECT_FALSE(PathLike("http://x/y"));
  EXPECT_FALSE(PathLike("has space.txt"));
  EXPECT_FALSE(PathLike("*.py"));
  auto q = TaskQuotes("Create `airline.py` that writes /app/results.txt.\n```\npython3 airline.py\n```\n");
  EXPECT_THAT(q, ElementsAre("airline.py", "/app/results.txt", "python3 airline.py"));
}

}  // namespace
}  // namespace specula::speculators
