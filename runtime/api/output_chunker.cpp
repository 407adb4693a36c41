#include "runtime/api/output_chunker.h"

#include <algorithm>

namespace specula::api {

size_t Utf8CompletePrefix(std::string_view bytes) {
  // Look back over at most 3 trailing continuation bytes for the lead byte
  // of the last sequence; cut before it only if it announces more bytes
  // than follow it.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;  // only continuation bytes at the end: nothing would complete them
}

void OutputChunker::Send(const Pending& p, std::string_view stream, std::string_view data) {
  if (data.empty()) return;
  emit_(OutputChunk{session_, p.branch, std::string(stream), std::string(data)});
}

void OutputChunker::Drain(Pending& p, std::string_view stream, bool all) {
  std::string_view view(p.bytes);
  size_t off = 0;
  while (off < view.size()) {
    std::string_view piece = view.substr(off, kMaxChunkBytes);
    bool last = off + piece.size() == view.size();
    size_t cut = all && last ? piece.size() : Utf8CompletePrefix(piece);
    // A piece of kMaxChunkBytes always has a cut point; only a short tail
    // (an incomplete character) waits.
    if (cut == 0) break;
    Send(p, stream, piece.substr(0, cut));
    off += cut;
  }
  p.bytes.erase(0, off);
}

void OutputChunker::Add(const std::string& branch, std::string_view stream, std::string_view data) {
  Pending& p = Of(stream);
  if (p.branch != branch) {
    // Another run's output (never within one commit today): what the old
    // one held back belongs to it.
    Drain(p, stream, /*all=*/true);
    p.branch = branch;
  }
  p.bytes.append(data);
  Drain(p, stream, /*all=*/false);
}

void OutputChunker::Flush() {
  Drain(out_, "stdout", /*all=*/true);
  Drain(err_, "stderr", /*all=*/true);
}

}  // namespace specula::api
