#include "speculators/sse.h"

namespace specula::speculators {

void SseParser::Feed(std::string_view bytes, std::vector<SseEvent>& out) {
  for (size_t i = 0; i < bytes.size() && !overflow_; ++i) {
    char c = bytes[i];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') continue;  // CRLF split across chunks (or within one)
    }
    if (c == '\r' || c == '\n') {
      pending_cr_ = c == '\r';
      Line(line_, out);
      line_.clear();
      continue;
    }
    line_.push_back(c);
    if (line_.size() + cur_.data.size() > max_) overflow_ = true;
  }
}

void SseParser::Line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {
    // Dispatch. An event without data is not dispatched (the standard).
    if (has_data_) {
      if (!cur_.data.empty() && cur_.data.back() == '\n') cur_.data.pop_back();
      out.push_back(cur_);
    }
    cur_.data.clear();
    cur_.event.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment
  std::string_view field = line, value;
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    cur_.data.append(value);
    cur_.data.push_back('\n');
    has_data_ = true;
    if (cur_.data.size() > max_) overflow_ = true;
  } else if (field == "event") {
    cur_.event = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) cur_.id = std::string(value);
  }
  // "retry" and unknown fields are ignored.
}

}  // namespace specula::speculators
