// Server-sent events (the HTML living standard's event stream format), as
// both model APIs stream: "field: value" lines, an empty line dispatches the
// event, ':' starts a comment, lines end with CRLF, LF or CR (also split
// across chunks). Incremental: feed chunks as they arrive.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace specula::speculators {

struct SseEvent {
  std::string event;  // "" = the default type ("message")
  std::string data;   // data lines joined with '\n'
  std::string id;
};

class SseParser {
 public:
  explicit SseParser(size_t max_event_bytes = 1u << 20) : max_(max_event_bytes) {}
  // Parses `bytes`, appending every completed event to `out`. After an
  // overflow (a line or event above the cap) it ignores all further input.
  void Feed(std::string_view bytes, std::vector<SseEvent>& out);
  bool overflowed() const { return overflow_; }

 private:
  void Line(std::string_view line, std::vector<SseEvent>& out);

  size_t max_;
  std::string line_;
  bool pending_cr_ = false;
  bool overflow_ = false;
  SseEvent cur_;
  bool has_data_ = false;
};

}  // namespace specula::speculators
