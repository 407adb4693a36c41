// Newline framing for the daemon's socket: bytes in, complete lines out, with
// a cap on how long a line may grow. Pure (no I/O) so it is unit-tested and
// fuzzed directly; the server and the client both use it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace specula::rpc {

class LineBuffer {
 public:
  explicit LineBuffer(size_t max_line) : max_line_(max_line) {}

  // Appends received bytes.
  void Append(std::string_view bytes) { buf_.append(bytes); }

  // The next complete line without its '\n' (a trailing '\r' is also
  // dropped), or nullopt when no complete line is buffered yet.
  std::optional<std::string> NextLine();

  // True when the unterminated tail is longer than max_line: the peer is
  // sending an oversized message and the connection should be dropped.
  // Meaningful after NextLine() returned nullopt (the tail then holds no
  // '\n'); complete lines are returned whatever their size, so callers check
  // their length against the same cap.
  bool Overflowed() const;

  size_t buffered() const { return buf_.size() - start_; }

 private:
  std::string buf_;
  size_t start_ = 0;     // consumed prefix of buf_, compacted lazily
  size_t scanned_ = 0;   // bytes after start_ known to hold no '\n'
  size_t max_line_;
};

}  // namespace specula::rpc
