// Slots and context keys, and templates: abstraction of a command into
// slot references and instantiation back, on word boundaries only.
#include "speculators/session_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace specula::speculators {
namespace {

Step S(std::string cmd, std::string out = "", int exit_code = 0) {
  Step s;
  s.command = std::move(cmd);
  s.stdout_text = std::move(out);
  s.exit_code = exit_code;
  return s;
}

std::string Value(const SessionState& st, const char* name) {
  const Slot* s = st.Find(name);
  return s ? s->value : "";
}

TEST(SessionStateTest, SlotsFollowTheSession) {
  SessionState st("Fix `calc.py` so that tests pass");
  EXPECT_EQ(st.keys()[1], "^");  // the opening context
  EXPECT_EQ(Value(st, "Q1"), "calc.py");
  st.Push(S("find . -name '*.py'", "./pkg/calc.py\n./tests/test_calc.py\n"));
  EXPECT_EQ(Value(st, "O1"), "./pkg/calc.py");
  EXPECT_EQ(Value(st, "O1.r"), "pkg/calc.py");
  EXPECT_EQ(Value(st, "O2.b"), "test_calc.py");
  EXPECT_EQ(st.keys()[0], "*");
  EXPECT_EQ(st.keys()[1], "find");
  EXPECT_EQ(st.keys()[2], "find/ok");
  st.Push(S("grep -n 'def add' ./pkg/calc.py", "41:def add(a, b):\n"));
  EXPECT_EQ(Value(st, "L1"), "41");
  EXPECT_EQ(Value(st, "L1^+20"), "70");
  EXPECT_EQ(Value(st, "G1"), "def add");
  EXPECT_EQ(Value(st, "C1"), "./pkg/calc.py");
  st.Push(S("cat > repro.py << 'EOF'\nimport calc\nEOF", ""));
  EXPECT_EQ(Value(st, "W1"), "repro.py");
  EXPECT_EQ(st.keys()[2], "write:.py/empty");
  st.Push(S("python repro.py", "ModuleNotFoundError: No module named 'calc'\n", 1));
  EXPECT_EQ(Value(st, "M"), "calc");
  EXPECT_EQ(st.keys()[4], "python \x01W1\x02/nomod");  // the last command's template
  EXPECT_EQ(st.size(), 4u);
}

TEST(TemplateTest, AbstractAndInstantiate) {
  SessionState st;
  st.Push(S("cat > /tmp/t.py << 'EOF'\nx\nEOF"));
  auto v = Abstract("python /tmp/t.py && cat /tmp/t.pyc", st.slots());
  ASSERT_GE(v.size(), 2u);
  EXPECT_EQ(v[0], "python /tmp/t.py && cat /tmp/t.pyc");  // the literal first
  EXPECT_EQ(PrintableTemplate(v[1]), "python {W1} && cat /tmp/t.pyc");  // not inside t.pyc
  EXPECT_TRUE(HasSlots(v[1]));
  EXPECT_THAT(TemplateSlotNames(v[1]), ::testing::ElementsAre("W1"));
  // A later session fills the same template with its own file.
  SessionState other;
  other.Push(S("cat > check.py << 'EOF'\ny\nEOF"));
  EXPECT_EQ(Instantiate(v[1], other.slots()).value(), "python check.py && cat /tmp/t.pyc");
  EXPECT_FALSE(Instantiate(v[1], SessionState().slots()).has_value());  // no W1 yet
  // Here-documents and long or multi-line commands are never templates.
  EXPECT_TRUE(Abstract("cat > a << EOF\nb\nEOF", st.slots()).empty());
  EXPECT_TRUE(Abstract(std::string(300, 'x'), st.slots()).empty());
}

TEST(TemplateTest, NumbersForPaging) {
  SessionState st;
  st.Push(S("sed -n '100,150p' big.py", "..."));
  auto v = Abstract("sed -n '151,201p' big.py", st.slots());
  bool paged = false;
  for (const auto& t : v) paged = paged || PrintableTemplate(t) == "sed -n '{B+1},{2B-A+1}p' {C1}";
  EXPECT_TRUE(paged);
}

}  // namespace
}  // namespace specula::speculators
