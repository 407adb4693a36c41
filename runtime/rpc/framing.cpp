#include "runtime/rpc/framing.h"

namespace specula::rpc {

std::optional<std::string> LineBuffer::NextLine() {
  // Only scan bytes not scanned before: a slow sender trickling a big line
  // must not cost quadratic time.
  size_t pos = buf_.find('\n', start_ + scanned_);
  if (pos == std::string::npos) {
    scanned_ = buf_.size() - start_;
    // Compact once the consumed prefix dominates, keeping appends amortised O(1).
    if (start_ > 0 && start_ >= buf_.size() / 2) {
      buf_.erase(0, start_);
      start_ = 0;
    }
    return std::nullopt;
  }
  size_t end = pos;
  if (end > start_ && buf_[end - 1] == '\r') --end;
  std::string line = buf_.substr(start_, end - start_);
  start_ = pos + 1;
  scanned_ = 0;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  return line;
}

bool LineBuffer::Overflowed() const { return buffered() > max_line_; }

}  // namespace specula::rpc
