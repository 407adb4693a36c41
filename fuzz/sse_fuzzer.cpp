// Fuzzes what a model server's bytes reach: the SSE parser (fed the input
// split at an input-chosen point, so line ends across chunks are covered),
// the streamed-candidate parser, and the analysis of commands and outputs.
// Invariants: nothing crashes; the split does not change the events; every
// candidate has a confidence in [0,1].
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "speculators/features.h"
#include "speculators/prompt.h"
#include "speculators/session_state.h"
#include "speculators/sse.h"

using namespace specula::speculators;
using specula::fuzz::Check;

namespace {
bool Same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  SseParser whole(4096), split(4096);
  std::vector<SseEvent> a, b;
  whole.Feed(input, a);
  size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  split.Feed(input.substr(0, cut), b);
  split.Feed(input.substr(cut), b);
  Check(whole.overflowed() == split.overflowed());
  if (!whole.overflowed()) Check(Same(a, b));
  CandidateStreamParser p("fuzz");
  (void)p.Feed(input.substr(0, cut));
  (void)p.Feed(input.substr(cut));
  for (const auto& c : p.all()) Check(c.confidence >= 0 && c.confidence <= 1);
  // The same bytes as a command and its output.
  CommandInfo info = AnalyzeCommand(input);
  Step s;
  s.command = std::string(input);
  s.stdout_text = std::string(input);
  (void)AnalyzeOutput(s, info);
  (void)TaskQuotes(input);
  SessionState st(input);
  st.Push(s);
  for (const auto& t : Abstract(input.substr(0, cut), st.slots())) {
    auto back = Instantiate(t, st.slots());
    Check(back.has_value() && *back == input.substr(0, cut));
  }
  return 0;
}
