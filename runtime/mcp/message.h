// The Model Context Protocol's framing and message shapes (docs/mcp.md):
// JSON-RPC 2.0, one message per line on stdio, as MCP revision 2025-06-18
// says (no batches; request ids are strings or integers, never null). Pure
// functions of their input, so the parser is unit-tested and fuzzed
// (fuzz/mcp_fuzzer.cpp) without a process or a daemon.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace specula::mcp {

using Json = nlohmann::json;

// The protocol revisions this server speaks, newest first.
inline constexpr std::array<std::string_view, 3> kProtocolVersions = {"2025-06-18", "2025-03-26", "2024-11-05"};
inline constexpr std::string_view kLatestProtocolVersion = kProtocolVersions[0];

// The version to answer an initialize with: the client's when this server
// speaks it, else the newest (the client then decides whether to go on).
std::string NegotiateVersion(std::string_view requested);
// Whether `version` has tool output schemas and structuredContent (2025-06-18 on).
bool HasStructuredContent(std::string_view version);

// JSON-RPC 2.0 error codes used on the MCP side.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// Longest message line accepted from the client (without its '\n').
inline constexpr size_t kMaxMessageBytes = 4u << 20;

// One message from the client.
struct Message {
  enum class Kind { kRequest, kNotification, kResponse };
  Kind kind = Kind::kRequest;
  Json id = nullptr;             // request, response: a string or an integer
  std::string method;            // request, notification
  Json params = Json::object();  // request, notification: always an object
  std::optional<Json> error;     // response: the client's error object, if it sent one
};

// Why a line is not a valid message. `reply` is false when nothing may be
// answered: a notification (a method and no id) with bad params.
struct ParseError {
  int code = kInvalidRequest;
  std::string message;
  Json id = nullptr;  // the request's id when it could be read, else null
  bool reply = true;
};

struct Parsed {
  std::optional<Message> message;
  std::optional<ParseError> error;
};

// Parses one line (without its '\n'). Never throws: any input, invalid UTF-8
// and deep nesting included, yields exactly one of message and error.
// Invalid JSON or nesting deeper than 64 levels: -32700. A batch (array), a
// non-object, a missing or wrong "jsonrpc", an id that is not a string or
// an integer, a message that is neither request, notification nor
// response: -32600. Params that are not an object: -32602.
Parsed ParseMessage(std::string_view line);

// Outgoing lines, each one line of JSON without the trailing '\n' (invalid
// UTF-8 in strings replaced by U+FFFD).
std::string EncodeResult(const Json& id, const Json& result);
std::string EncodeError(const Json& id, int code, std::string_view message, const Json& data = nullptr);
std::string EncodeNotification(std::string_view method, const Json& params);

// A request's _meta.progressToken (a string or an integer), if it has one.
std::optional<Json> ProgressToken(const Json& params);

}  // namespace specula::mcp
