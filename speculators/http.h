// A small HTTP POST client over libcurl's multi interface: connect and total
// timeouts, a response size cap, streaming of the body to a callback as it
// arrives, and cancellation within one poll interval (50 ms) even while the
// server sends nothing (the easy interface's progress callback only runs
// about once a second on an idle transfer).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace specula::speculators {

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};  // whole transfer
  const std::atomic<bool>* cancelled = nullptr;
  size_t max_response_bytes = 16u << 20;
};

struct HttpResponse {
  long status = 0;
  std::string content_type;
  std::string body;  // the whole body (also when streamed)
};

// Called with each body chunk of a 2xx response as it arrives; returning
// false aborts the transfer (the result is then kAborted).
using BodyChunk = std::function<bool(std::string_view)>;

// Errors: kDeadlineExceeded (timeout), kAborted (cancelled or the callback
// stopped it), kUnavailable (cannot connect or resolve), kResourceExhausted
// (response too large), kInternal (other transport failures). HTTP error
// statuses are not errors here: the caller reads `status` and `body`.
Result<HttpResponse> HttpPost(const HttpRequest& request, const BodyChunk& on_chunk = {});

}  // namespace specula::speculators
