#include "speculators/http.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace specula::speculators {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct Sink {
  HttpResponse* resp;
  const BodyChunk* on_chunk;
  CURL* curl;
  size_t max;
  bool overflow = false;
  bool stopped = false;
};

size_t WriteBody(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t n = size * nmemb;
  if (s->resp->body.size() + n > s->max) {
    s->overflow = true;
    return 0;  // fails the transfer
  }
  s->resp->body.append(ptr, n);
  if (s->on_chunk && *s->on_chunk) {
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300 && !(*s->on_chunk)(std::string_view(ptr, n))) {
      s->stopped = true;
      return 0;
    }
  }
  return n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

Result<HttpResponse> HttpPost(const HttpRequest& req, const BodyChunk& on_chunk) {
  GlobalInit();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  std::unique_ptr<CURLM, MultiDeleter> multi(curl_multi_init());
  if (!curl || !multi) return Error(Code::kInternal, "http: curl init failed");
  curl_slist* raw = nullptr;
  for (const auto& h : req.headers) raw = curl_slist_append(raw, h.c_str());
  raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);
  HttpResponse resp;
  CURL* c = curl.get();
  Sink sink{&resp, &on_chunk, c, req.max_response_bytes};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  curl_multi_add_handle(multi.get(), c);
  std::string what = "POST " + req.url;
  CURLcode rc = CURLE_OK;
  bool done = false, cancelled = false;
  while (!done) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi.get(), &running);
    if (mc != CURLM_OK) {
      curl_multi_remove_handle(multi.get(), c);
      return Error(Code::kInternal, what + ": " + curl_multi_strerror(mc));
    }
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi.get(), &queued)) {
      if (m->msg == CURLMSG_DONE) {
        rc = m->data.result;
        done = true;
      }
    }
    if (done) break;
    if (req.cancelled && req.cancelled->load()) {
      cancelled = true;
      break;
    }
    curl_multi_poll(multi.get(), nullptr, 0, 50, nullptr);
    if (req.cancelled && req.cancelled->load()) {
      cancelled = true;
      break;
    }
  }
  curl_multi_remove_handle(multi.get(), c);
  if (cancelled) return Error(Code::kAborted, what + ": cancelled");
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_OPERATION_TIMEDOUT:
      return Error(Code::kDeadlineExceeded, what + ": timed out");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Error(Code::kUnavailable, what + ": " + curl_easy_strerror(rc));
    case CURLE_WRITE_ERROR:
      if (sink.overflow) return Error(Code::kResourceExhausted, what + ": reply too large");
      if (sink.stopped) return Error(Code::kAborted, what + ": stopped by the reader");
      return Error(Code::kInternal, what + ": " + curl_easy_strerror(rc));
    default:
      return Error(Code::kInternal, what + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  char* ct = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) resp.content_type = ct;
  return resp;
}

}  // namespace specula::speculators
