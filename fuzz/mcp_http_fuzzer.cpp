// Fuzzes the head parser of `specula mcp --listen` (runtime/mcp/http_request.h),
// the first code a local client's bytes reach before any token is checked,
// and the Accept matcher. Invariants: nothing crashes; a parsed head fits in
// kMaxHttpHeaderBytes, ends where the input has its blank line, and has a
// body within the limit; a bad one carries an HTTP error status; parsing a
// longer input that starts with a whole head gives the same head.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "runtime/mcp/http_request.h"

using namespace specula::mcp;
using specula::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr size_t kMaxBody = 1 << 16;
  HttpParse p = ParseHttpHead(in, kMaxBody);
  switch (p.state) {
    case HttpParse::State::kNeedMore:
      Check(in.find("\r\n\r\n") == std::string_view::npos);
      Check(in.size() <= kMaxHttpHeaderBytes);
      break;
    case HttpParse::State::kBad:
      Check(p.status >= 400 && p.status < 600);
      Check(!p.reason.empty());
      break;
    case HttpParse::State::kDone: {
      Check(p.body_offset <= kMaxHttpHeaderBytes && p.body_offset <= in.size());
      Check(in.substr(p.body_offset - 4, 4) == "\r\n\r\n");
      Check(p.request.content_length <= kMaxBody);
      Check(!p.request.method.empty() && !p.request.target.empty() && p.request.target.front() == '/');
      for (const auto& [name, value] : p.request.headers) {
        for (char c : name) Check(c < 'A' || c > 'Z');
      }
      std::string more(in);
      more += "trailing body bytes";
      HttpParse q = ParseHttpHead(more, kMaxBody);
      Check(q.state == HttpParse::State::kDone && q.body_offset == p.body_offset &&
            q.request.headers == p.request.headers && q.request.target == p.request.target);
      break;
    }
  }
  // The Accept matcher on the same bytes: total, and "*/*" always matches.
  (void)AcceptsType(in, "application/json");
  Check(AcceptsType(std::string(in) + ", */*", "text/event-stream"));
  return 0;
}
