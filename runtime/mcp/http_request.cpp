#include "runtime/mcp/http_request.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace specula::mcp {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters (method, header names).
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) return false;
  }
  return true;
}

HttpParse Bad(int status, std::string reason) {
  HttpParse p;
  p.state = HttpParse::State::kBad;
  p.status = status;
  p.reason = std::move(reason);
  return p;
}

const char* StatusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

}  // namespace

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

HttpParse ParseHttpHead(std::string_view bytes, size_t max_body) {
  size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() > kMaxHttpHeaderBytes) return Bad(431, "request head over 16 KiB");
    return {};
  }
  if (end + 4 > kMaxHttpHeaderBytes) return Bad(431, "request head over 16 KiB");
  HttpParse p;
  std::string_view head = bytes.substr(0, end);
  size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  // Request line: METHOD SP TARGET SP HTTP/1.x
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Bad(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Bad(400, "malformed method");
  if (target.empty() || target.front() != '/') return Bad(400, "the request target must be a path");
  for (unsigned char c : target) {
    if (c <= 0x20 || c == 0x7f) return Bad(400, "malformed request target");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return Bad(505, "only HTTP/1.0 and HTTP/1.1");
  p.request.method = std::string(method);
  p.request.target = std::string(target);
  bool have_length = false;
  std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || !IsToken(h.substr(0, colon))) return Bad(400, "malformed header line");
    std::string name = Lower(h.substr(0, colon));
    std::string_view value = Trim(h.substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return Bad(400, "control character in a header value");
    }
    if (name == "transfer-encoding") return Bad(501, "Transfer-Encoding is not supported: send Content-Length");
    if (name == "content-length") {
      if (have_length) return Bad(400, "more than one Content-Length");
      have_length = true;
      size_t n = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || ptr != value.data() + value.size() || value.empty()) {
        return Bad(400, "malformed Content-Length");
      }
      if (n > max_body) return Bad(413, "body over " + std::to_string(max_body) + " bytes");
      p.request.content_length = n;
    }
    auto [it, inserted] = p.request.headers.emplace(name, std::string(value));
    if (!inserted) it->second += ", " + std::string(value);
  }
  p.state = HttpParse::State::kDone;
  p.body_offset = end + 4;
  return p;
}

bool AcceptsType(std::string_view accept, std::string_view type) {
  if (accept.empty()) return true;  // no Accept: anything
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    item = Trim(item.substr(0, item.find(';')));
    std::string range = Lower(item);
    if (range == "*/*" || range == Lower(type)) return true;
    size_t slash = type.find('/');
    if (slash != std::string_view::npos && range == Lower(type.substr(0, slash)) + "/*") return true;
  }
  return false;
}

std::string HttpHead(int status, std::string_view content_type, std::optional<size_t> content_length,
                     const std::map<std::string, std::string>& extra_headers) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) + "\r\n";
  if (!content_type.empty()) h += "Content-Type: " + std::string(content_type) + "\r\n";
  if (content_length) h += "Content-Length: " + std::to_string(*content_length) + "\r\n";
  for (const auto& [name, value] : extra_headers) h += name + ": " + value + "\r\n";
  h += "Connection: close\r\n\r\n";
  return h;
}

}  // namespace specula::mcp
