#include "speculators/anthropic_client.h"

#include <cstdlib>
#include <optional>

#include "speculators/http.h"
#include "speculators/sse.h"

namespace specula::speculators {
namespace {

using Json = nlohmann::json;

// {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}
std::string ErrorMessage(const Json& j, const std::string& fallback) {
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const Json& e = j["error"];
    std::string type = e.contains("type") && e["type"].is_string() ? e["type"].get<std::string>() : "";
    std::string msg = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : fallback;
    return type.empty() ? msg : type + ": " + msg;
  }
  return fallback;
}

Code StatusCode(long status) {
  if (status == 401 || status == 403) return Code::kPermissionDenied;
  if (status == 429) return Code::kResourceExhausted;
  if (status == 529 || status >= 500) return Code::kUnavailable;
  if (status == 400 || status == 404 || status == 413) return Code::kInvalidArgument;
  return Code::kInternal;
}

void Usage(const Json& u, MessagesReply& r) {
  if (!u.is_object()) return;
  if (u.contains("input_tokens") && u["input_tokens"].is_number_unsigned()) r.input_tokens = u["input_tokens"];
  if (u.contains("output_tokens") && u["output_tokens"].is_number_unsigned()) r.output_tokens = u["output_tokens"];
}

Result<MessagesReply> ParseMessage(const Json& j, const std::string& what) {
  if (!j.is_object()) return Error(Code::kInternal, what + ": reply is not a JSON object");
  if (j.value("type", "") == "error") return Error(Code::kInternal, what + ": " + ErrorMessage(j, "error"));
  if (j.value("type", "") != "message" || !j.contains("content") || !j["content"].is_array()) {
    return Error(Code::kInternal, what + ": reply is not a message");
  }
  MessagesReply r;
  for (const auto& block : j["content"]) {
    if (block.is_object() && block.value("type", "") == "text" && block.contains("text") && block["text"].is_string()) {
      r.text += block["text"].get<std::string>();
    }
  }
  if (j.contains("stop_reason") && j["stop_reason"].is_string()) r.stop_reason = j["stop_reason"];
  if (j.contains("usage")) Usage(j["usage"], r);
  return r;
}

}  // namespace

AnthropicConfig AnthropicConfigFromEnvironment(AnthropicConfig base) {
  auto fill = [](std::string& field, const char* var) {
    const char* v = std::getenv(var);
    if (field.empty() && v) field = v;
  };
  fill(base.base_url, "ANTHROPIC_BASE_URL");
  fill(base.api_key, "ANTHROPIC_API_KEY");
  fill(base.model, "SPECULA_ANTHROPIC_MODEL");
  if (base.base_url.empty()) base.base_url = "https://api.anthropic.com";
  return base;
}

Result<MessagesReply> MessagesClient::Create(const std::string& system, const std::string& user,
                                             const std::atomic<bool>* cancelled,
                                             const std::function<void(std::string_view)>& on_text) const {
  if (config_.model.empty()) {
    return Error(Code::kInvalidArgument, "messages: no model").WithHint("set SPECULA_ANTHROPIC_MODEL or the model option");
  }
  if (config_.base_url.empty()) return Error(Code::kInvalidArgument, "messages: no base URL");
  const bool stream = config_.stream;
  HttpRequest req;
  try {
    Json body = {{"model", config_.model},
                 {"max_tokens", config_.max_tokens},
                 {"temperature", config_.temperature},
                 {"system", system},
                 {"messages", Json::array({{{"role", "user"}, {"content", user}}})}};
    if (stream) body["stream"] = true;
    req.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("messages: request: ") + e.what());
  }
  req.url = config_.base_url;
  while (!req.url.empty() && req.url.back() == '/') req.url.pop_back();
  req.url += "/v1/messages";
  req.headers = {"content-type: application/json", "anthropic-version: " + config_.version};
  if (!config_.api_key.empty()) req.headers.push_back("x-api-key: " + config_.api_key);
  if (stream) req.headers.push_back("accept: text/event-stream");
  req.connect_timeout = config_.connect_timeout;
  req.timeout = config_.timeout;
  req.cancelled = cancelled;
  std::string what = "messages " + req.url;

  SseParser sse;
  MessagesReply streamed;
  bool started = false, stopped = false;
  std::optional<Error> stream_error;
  std::vector<SseEvent> events;
  BodyChunk chunk;
  if (stream) {
    chunk = [&](std::string_view bytes) {
      events.clear();
      sse.Feed(bytes, events);
      if (sse.overflowed()) {
        stream_error = Error(Code::kResourceExhausted, what + ": stream event too large");
        return false;
      }
      for (const auto& ev : events) {
        Json j = Json::parse(ev.data, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          stream_error = Error(Code::kInternal, what + ": stream event is not JSON");
          return false;
        }
        std::string type = ev.event.empty() ? j.value("type", "") : ev.event;
        if (type == "error") {
          Code code = Code::kInternal;
          if (j.contains("error") && j["error"].is_object()) {
            std::string et = j["error"].value("type", "");
            if (et == "overloaded_error" || et == "api_error") code = Code::kUnavailable;
            if (et == "rate_limit_error") code = Code::kResourceExhausted;
          }
          stream_error = Error(code, what + ": " + ErrorMessage(j, "stream error"));
          return false;
        }
        if (type == "message_start") {
          started = true;
          if (j.contains("message") && j["message"].is_object() && j["message"].contains("usage")) {
            Usage(j["message"]["usage"], streamed);
          }
        } else if (type == "content_block_delta") {
          Json d = j.value("delta", Json::object());
          if (d.is_object() && d.value("type", "") == "text_delta" && d.contains("text") && d["text"].is_string()) {
            std::string t = d["text"].get<std::string>();
            streamed.text += t;
            if (on_text) on_text(t);
          }
        } else if (type == "message_delta") {
          Json d = j.value("delta", Json::object());
          if (d.is_object() && d.contains("stop_reason") && d["stop_reason"].is_string()) streamed.stop_reason = d["stop_reason"];
          if (j.contains("usage")) Usage(j["usage"], streamed);
        } else if (type == "message_stop") {
          stopped = true;
        }
        // ping, content_block_start, content_block_stop: nothing to do.
      }
      return true;
    };
  }
  auto resp = HttpPost(req, chunk);
  if (stream_error) return *stream_error;
  if (!resp.ok()) {
    Error e = std::move(resp).error();
    return Error(e.code(), "messages: " + e.message());
  }
  if (resp->status < 200 || resp->status >= 300) {
    Json j = Json::parse(resp->body, nullptr, false);
    return Error(StatusCode(resp->status), what + ": HTTP " + std::to_string(resp->status) + ": " +
                                               ErrorMessage(j.is_discarded() ? Json() : j, resp->body.substr(0, 512)));
  }
  if (!stream) {
    Json j = Json::parse(resp->body, nullptr, false);
    if (j.is_discarded()) return Error(Code::kInternal, what + ": reply is not JSON");
    return ParseMessage(j, what);
  }
  if (!started) return Error(Code::kInternal, what + ": stream without message_start");
  if (!stopped) return Error(Code::kInternal, what + ": stream ended before message_stop");
  return streamed;
}

AnthropicSpeculator::AnthropicSpeculator(AnthropicConfig config, PromptOptions prompt)
    : client_(std::move(config)), prompt_(prompt) {}

Result<std::vector<Candidate>> AnthropicSpeculator::ProposeStreaming(const History& history, int k,
                                                                     const std::atomic<bool>* cancelled,
                                                                     const CandidateSink& on_candidate) {
  if (k <= 0) return std::vector<Candidate>{};
  Prompt p = BuildSpeculatorPrompt(history, k, prompt_, hints_);
  CandidateStreamParser parser("anthropic");
  auto on_text = [&](std::string_view t) {
    for (const auto& c : parser.Feed(t)) {
      if (on_candidate) on_candidate(c);
    }
  };
  SPECULA_ASSIGN_OR_RETURN(MessagesReply reply, client_.Create(p.system, p.user, cancelled, on_text));
  if (!client_.config().stream) on_text(reply.text);
  if (parser.all().empty() && reply.text.find("candidates") == std::string::npos) {
    return Error(Code::kInternal, "speculator: reply has no candidates: " + reply.text.substr(0, 200));
  }
  return NormalizeCandidates(parser.all(), k);
}

}  // namespace specula::speculators
