// libFuzzer target: whatever a client sends to the metrics endpoint, the
// answer is one well-formed HTTP/1.0 response (status line, headers, blank
// line) and the registry is rendered only for GET or HEAD of /metrics:
// never a crash, an escaped exception, or a scrape for a bad request.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/metrics/endpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string request(reinterpret_cast<const char*>(data), size);
  int rendered = 0;
  std::string response = specula::metrics::HttpResponse(request, [&] {
    ++rendered;
    return std::string("specula_sessions 1\n");
  });
  if (response.rfind("HTTP/1.0 ", 0) != 0) __builtin_trap();
  size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) __builtin_trap();
  const bool ok = response.rfind("HTTP/1.0 200 ", 0) == 0;
  if (rendered > 1 || (rendered == 1) != ok) __builtin_trap();
  if (ok && request.rfind("GET ", 0) != 0 && request.rfind("HEAD ", 0) != 0) __builtin_trap();
  return 0;
}
