// Cutting action.commit's live output into OutputChunks (wire.h): bytes
// arrive in whatever pieces the sandbox read; chunks go out at most
// kMaxChunkBytes long and cut on UTF-8 character boundaries, because the
// wire is JSON, whose strings must be valid UTF-8 (rpc::DumpJson replaces
// invalid bytes): a character cut in two would come out as two U+FFFD and
// the chunks would no longer add up to the reply's text. Pure data, no I/O.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/api/wire.h"

namespace specula::api {

// The length of the longest prefix of `bytes` that does not end inside a
// UTF-8 sequence its last bytes begin (so at most 3 bytes are cut off).
// Bytes that cannot be completed into UTF-8 are not held back.
size_t Utf8CompletePrefix(std::string_view bytes);

class OutputChunker {
 public:
  static constexpr size_t kMaxChunkBytes = 64 * 1024;
  using Emit = std::function<void(const OutputChunk&)>;

  OutputChunker(std::string session, Emit emit) : session_(std::move(session)), emit_(std::move(emit)) {}

  // More bytes of `branch`'s stream ("stdout" | "stderr"). Emits what can
  // go out now; an incomplete character at the end waits for its rest.
  void Add(const std::string& branch, std::string_view stream, std::string_view data);
  // Emits whatever is held back: the output has ended.
  void Flush();

 private:
  struct Pending {
    std::string branch;
    std::string bytes;
  };
  Pending& Of(std::string_view stream) { return stream == "stderr" ? err_ : out_; }
  void Send(const Pending& p, std::string_view stream, std::string_view data);
  void Drain(Pending& p, std::string_view stream, bool all);

  std::string session_;
  Emit emit_;
  Pending out_, err_;
};

}  // namespace specula::api
