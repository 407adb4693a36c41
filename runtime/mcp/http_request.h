// One HTTP/1.1 request as the MCP Streamable HTTP transport reads it
// (streamable_http.h): request line, headers, and a Content-Length body.
// Pure parsing, no I/O, so that it is fuzzed on its own
// (fuzz/mcp_http_fuzzer.cpp). Chunked request bodies are refused (an MCP
// client sends one JSON message with its length).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace specula::mcp {

inline constexpr size_t kMaxHttpHeaderBytes = 16 * 1024;

struct HttpRequest {
  std::string method;  // as sent: "POST", "GET", ...
  std::string target;  // the path and query, e.g. "/mcp"
  // Lower-cased names; a repeated header's values joined with ", ".
  std::map<std::string, std::string> headers;
  size_t content_length = 0;

  // The header's value, "" when absent.
  std::string Header(const std::string& lower_name) const;
};

struct HttpParse {
  enum class State { kNeedMore, kDone, kBad } state = State::kNeedMore;
  HttpRequest request;     // kDone: the head; the body starts at body_offset
  size_t body_offset = 0;  // kDone: bytes of the head, blank line included
  int status = 400;        // kBad: the status to answer (400, 413, 431, 501, 505)
  std::string reason;      // kBad: why, for the response body
};

// Parses the head of `bytes` (what arrived so far). kNeedMore until the
// blank line; kBad for what is not HTTP/1.x, a head over
// kMaxHttpHeaderBytes (431), a body over `max_body` (413), a bad or
// duplicated Content-Length, or Transfer-Encoding (501).
HttpParse ParseHttpHead(std::string_view bytes, size_t max_body);

// Whether an Accept header value lists `type` (media ranges, parameters and
// q-values ignored; "*/*" counts).
bool AcceptsType(std::string_view accept, std::string_view type);

// An HTTP/1.1 response head with "Connection: close"; extra_headers are
// full lines without the CRLF.
std::string HttpHead(int status, std::string_view content_type, std::optional<size_t> content_length,
                     const std::map<std::string, std::string>& extra_headers = {});

}  // namespace specula::mcp
