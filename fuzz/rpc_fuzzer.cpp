// Fuzzes what a client's bytes reach in speculad before any handler: the
// line framing, the JSON-RPC request decoder, typed param access, and (for
// the client side) the reply decoder. All pure functions: no socket, no
// daemon, so it runs at full speed. Invariants checked: nothing throws or
// crashes, every input gets exactly one of request/error, error codes are
// JSON-RPC's protocol codes, and encoded replies are single lines of JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "runtime/api/params.h"
#include "runtime/api/wire.h"
#include "runtime/rpc/framing.h"
#include "runtime/rpc/protocol.h"

using namespace specula::rpc;
using specula::fuzz::Check;
using specula::api::Params;

namespace {

void DecodeOne(std::string_view line) {
  Decoded d = DecodeRequest(line);
  Check(d.request.has_value() != d.error.has_value());
  if (d.error) {
    int c = d.error->code;
    Check(c == kParseError || c == kInvalidRequest || c == kInvalidParams);
    std::string reply = EncodeError(d.error->id, c, d.error->message);
    Check(reply.find('\n') == std::string::npos);
    return;
  }
  const Request& req = *d.request;
  Check(!req.method.empty());
  Check(req.params.is_object());
  // What the handlers do with params: typed access must fail cleanly.
  Params p(req.method, req.params);
  (void)p.String("session");
  (void)p.OptString("command");
  (void)p.OptUint("timeout_ms", 0, 1000);
  (void)p.Finish();
  // And the decoders of the contract, which every request reaches.
  specula::api::CreateSessionRequest create;
  (void)specula::api::DecodeParams(req.params, create);
  specula::api::CommitRequest commit;
  (void)specula::api::DecodeParams(req.params, commit);
  specula::api::MountCheckpointRequest mount;
  (void)specula::api::DecodeParams(req.params, mount);
  std::string reply = EncodeResult(req.id.value_or(nullptr), req.params);
  Check(reply.find('\n') == std::string::npos);
  // The client decodes what the server encodes.
  auto back = DecodeReply(reply);
  Check(back.ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // As one line (what the decoder sees)...
  DecodeOne(input);
  // ...and as a byte stream through the framing, split at an input-chosen
  // point, with a small cap so the overflow path is reached too.
  LineBuffer buf(1024);
  size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  buf.Append(input.substr(0, cut));
  while (auto line = buf.NextLine()) DecodeOne(*line);
  buf.Append(input.substr(cut));
  while (auto line = buf.NextLine()) DecodeOne(*line);
  (void)buf.Overflowed();
  (void)DecodeReply(input);
  return 0;
}
