// The wire protocol of speculad: JSON-RPC 2.0, one JSON object per line
// (docs/api.md). Everything here is a pure function of its input (no I/O, no
// state) so the request decoder can be fuzzed fast (fuzz/rpc_fuzzer.cpp) and
// unit-tested without a socket.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace specula::rpc {

using Json = nlohmann::json;

// Largest request or response line (without its '\n'). A bigger request gets
// an error and its connection is dropped; a client refuses a bigger response.
inline constexpr size_t kMaxMessageBytes = 4u << 20;

// JSON-RPC 2.0 reserved codes for protocol-level failures.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// An application error's JSON-RPC code: -32000 minus the Code's index
// (docs/error-model.md), so invalid_argument is -32001, internal -32011.
int JsonRpcCodeFor(Code code);

// A request id exactly as the client wrote it: its JSON text, taken from the
// request line (JSON-RPC 2.0: the reply carries "the same value"). A parsed
// Json would not do: integers beyond 64 bits become doubles, and "1.50",
// "1e2" or "\u0041" would come back spelled differently.
struct RawId {
  std::string json = "null";  // a JSON string, number or null; never anything else
  bool operator==(const RawId&) const = default;
};

// One decoded request. `id` is absent for a notification (no reply is sent).
struct Request {
  std::optional<Json> id;  // a string, a number or null, as parsed
  RawId raw_id;            // the same id as the client spelled it (replies use this)
  std::string method;
  Json params = Json::object();  // always an object; absent params become {}
};

// Why a line is not a valid request, ready to be sent back as an error reply.
struct ProtocolError {
  int code = kInvalidRequest;
  std::string message;
  Json id = nullptr;  // the request's id when it could be read, else null
  RawId raw_id;       // its text (replies use this)
};

// Either a request or the protocol error to answer it with.
struct Decoded {
  std::optional<Request> request;
  std::optional<ProtocolError> error;
};

// False when `text` nests arrays/objects deeper than max_depth (strings
// are skipped): checked before parsing, so hostile input like 4 MiB of '['
// costs neither the parser nor the destructor deep recursion. The MCP
// server's message parser (runtime/mcp) uses it too.
bool NestingWithinLimit(std::string_view text, int max_depth = 64);

// Decodes one line (without its '\n'). Never throws; any input, including
// invalid UTF-8, deep nesting and huge numbers, yields a request or an error.
// Rejected: non-objects (batches too), a missing or wrong "jsonrpc", a
// non-string or empty method, ids that are not string/number/null, params
// that are not an object (positional params are not supported).
Decoded DecodeRequest(std::string_view line);

// Reply lines, each a single line of JSON without the trailing '\n'.
std::string EncodeResult(const Json& id, const Json& result);
std::string EncodeError(const Json& id, int code, std::string_view message,
                        const Json& data = nullptr);
// An Error as a JSON-RPC error reply: code from JsonRpcCodeFor (or
// `protocol_code` when non-zero, e.g. kInvalidParams), data {kind, errno, hint}.
std::string EncodeError(const Json& id, const Error& error, int protocol_code = 0);
std::string EncodeRequest(const Json& id, std::string_view method, const Json& params);
// The same replies with the id spliced in as the client wrote it.
std::string EncodeResult(const RawId& id, const Json& result);
std::string EncodeError(const RawId& id, int code, std::string_view message, const Json& data = nullptr);
std::string EncodeError(const RawId& id, const Error& error, int protocol_code = 0);

// Client side: one reply line, decoded. A JSON-RPC error reply becomes an
// Error whose Code is taken from data.kind (falling back to the code number),
// with the daemon's message and hint. Malformed replies are kInternal errors.
// A notification from the daemon (an object with a "method" and no "id")
// is no reply: it comes back with notification set, its method and params
// (an object; {} when absent or not one) for a client that wants them.
struct Reply {
  Json id;
  Result<Json> result;
  bool notification = false;
  std::string method = {};
  Json params = {};
};
Result<Reply> DecodeReply(std::string_view line);

// Code for a CodeName ("not_found" -> kNotFound); nullopt if unknown.
std::optional<Code> CodeFromName(std::string_view name);

// Dumps JSON for the wire: invalid UTF-8 in strings is replaced (U+FFFD)
// rather than throwing, because action output is arbitrary bytes.
std::string DumpJson(const Json& value);

}  // namespace specula::rpc
