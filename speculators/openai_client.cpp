#include "speculators/openai_client.h"

#include <cstdlib>
#include <optional>

#include "speculators/http.h"
#include "speculators/sse.h"

namespace specula::speculators {
namespace {

using Json = nlohmann::json;

std::string Truncate(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  return s.substr(0, max) + "\n[... truncated]";
}

std::string FormatOutcome(const Step& s, size_t max) {
  std::string out = "exit_code: " + std::to_string(s.exit_code);
  if (s.signal) out += " (signal " + std::to_string(s.signal) + ")";
  out += "\nstdout:\n" + Truncate(s.stdout_text, max) + "\nstderr:\n" + Truncate(s.stderr_text, max);
  return out;
}

void ParseToolCalls(const Json& msg, ChatReply& r) {
  if (!msg.contains("tool_calls") || !msg["tool_calls"].is_array()) return;
  for (const auto& tc : msg["tool_calls"]) {
    if (!tc.is_object()) continue;
    ToolCall call;
    call.id = tc.value("id", "");
    Json fn = tc.value("function", Json::object());
    if (!fn.is_object()) continue;
    call.name = fn.value("name", "");
    call.arguments = fn.value("arguments", "");
    r.tool_calls.push_back(std::move(call));
  }
}

Result<ChatReply> ParseReply(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Code::kInternal, "chat completions: reply is not a JSON object");
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() || !j["choices"][0].is_object()) {
    return Error(Code::kInternal, "chat completions: reply has no choices");
  }
  const Json& choice = j["choices"][0];
  Json msg = choice.value("message", Json::object());
  ChatReply r;
  if (msg.is_object()) {
    if (msg.contains("content") && msg["content"].is_string()) r.content = msg["content"];
    ParseToolCalls(msg, r);
  }
  if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) r.finish_reason = choice["finish_reason"];
  if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("total_tokens") &&
      j["usage"]["total_tokens"].is_number_unsigned()) {
    r.total_tokens = j["usage"]["total_tokens"].get<uint64_t>();
  }
  return r;
}

Error HttpError(const std::string& what, long status, const std::string& body) {
  std::string detail = body.substr(0, 512);
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string()) {
    detail = j["error"]["message"].get<std::string>();
  }
  Code code = status == 401 || status == 403 ? Code::kPermissionDenied
              : status == 429               ? Code::kResourceExhausted
              : status >= 500               ? Code::kUnavailable
                                            : Code::kInternal;
  return Error(code, what + ": HTTP " + std::to_string(status) + ": " + detail);
}

}  // namespace

OpenAIConfig OpenAIConfigFromEnvironment(OpenAIConfig base) {
  auto fill = [](std::string& field, const char* var) {
    const char* v = std::getenv(var);
    if (field.empty() && v) field = v;
  };
  fill(base.base_url, "OPENAI_BASE_URL");
  fill(base.api_key, "OPENAI_API_KEY");
  fill(base.model, "SPECULA_MODEL");
  if (base.base_url.empty()) base.base_url = "https://api.openai.com/v1";
  return base;
}

Result<ChatReply> ChatClient::Complete(Json body, const std::atomic<bool>* cancelled,
                                       const std::function<void(std::string_view)>& on_text) const {
  if (config_.model.empty()) {
    return Error(Code::kInvalidArgument, "chat completions: no model").WithHint("set SPECULA_MODEL or the model option");
  }
  if (config_.base_url.empty()) return Error(Code::kInvalidArgument, "chat completions: no base URL");
  const bool stream = static_cast<bool>(on_text);
  HttpRequest req;
  try {
    body["model"] = config_.model;
    body["temperature"] = config_.temperature;
    if (stream) body["stream"] = true;
    req.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("chat completions: request: ") + e.what());
  }
  req.url = config_.base_url;
  while (!req.url.empty() && req.url.back() == '/') req.url.pop_back();
  req.url += "/chat/completions";
  req.headers = {"Content-Type: application/json"};
  if (stream) req.headers.push_back("Accept: text/event-stream");
  if (!config_.api_key.empty()) req.headers.push_back("Authorization: Bearer " + config_.api_key);
  req.connect_timeout = config_.connect_timeout;
  req.timeout = config_.timeout;
  req.cancelled = cancelled;
  std::string what = "chat completions " + req.url;

  // Streaming: SSE events of chat.completion.chunk objects, then [DONE].
  SseParser sse;
  ChatReply streamed;
  bool done = false;
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
        if (ev.data == "[DONE]") {
          done = true;
          continue;
        }
        Json j = Json::parse(ev.data, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        if (j.contains("error")) {
          std::string m = j["error"].is_object() ? j["error"].value("message", "stream error") : "stream error";
          stream_error = Error(Code::kInternal, what + ": " + m);
          return false;
        }
        if (!j.contains("choices") || !j["choices"].is_array()) continue;
        for (const auto& ch : j["choices"]) {
          if (!ch.is_object()) continue;
          if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) streamed.finish_reason = ch["finish_reason"];
          Json delta = ch.value("delta", Json::object());
          if (!delta.is_object()) continue;
          if (delta.contains("content") && delta["content"].is_string()) {
            std::string t = delta["content"].get<std::string>();
            streamed.content += t;
            on_text(t);
          }
          if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
            for (const auto& tc : delta["tool_calls"]) {
              if (!tc.is_object()) continue;
              size_t idx = tc.contains("index") && tc["index"].is_number_unsigned() ? tc["index"].get<size_t>() : 0;
              if (idx > 64) continue;
              if (streamed.tool_calls.size() <= idx) streamed.tool_calls.resize(idx + 1);
              ToolCall& call = streamed.tool_calls[idx];
              if (tc.contains("id") && tc["id"].is_string()) call.id = tc["id"];
              Json fn = tc.value("function", Json::object());
              if (fn.is_object()) {
                // The name comes once, in the call's first delta.
                if (fn.contains("name") && fn["name"].is_string() && call.name.empty()) call.name = fn["name"].get<std::string>();
                if (fn.contains("arguments") && fn["arguments"].is_string()) call.arguments += fn["arguments"].get<std::string>();
              }
            }
          }
        }
        if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("total_tokens") &&
            j["usage"]["total_tokens"].is_number_unsigned()) {
          streamed.total_tokens = j["usage"]["total_tokens"].get<uint64_t>();
        }
      }
      return true;
    };
  }
  auto resp = HttpPost(req, chunk);
  if (stream_error) return *stream_error;
  if (!resp.ok()) {
    Error e = std::move(resp).error();
    return Error(e.code(), "chat completions: " + e.message());
  }
  if (resp->status < 200 || resp->status >= 300) return HttpError(what, resp->status, resp->body);
  if (stream) {
    // A server may ignore "stream" and answer with one JSON object.
    if (!done && resp->content_type.find("text/event-stream") == std::string::npos) {
      auto r = ParseReply(resp->body);
      if (r.ok() && !r->content.empty()) on_text(r->content);
      return r;
    }
    if (!done) return Error(Code::kInternal, what + ": stream ended without [DONE]");
    return streamed;
  }
  return ParseReply(resp->body);
}

Json BashTool() {
  return {{"type", "function"},
          {"function",
           {{"name", "bash"},
            {"description", "Run one bash command in the work directory and return its output."},
            {"parameters",
             {{"type", "object"}, {"properties", {{"command", {{"type", "string"}}}}}, {"required", {"command"}}}}}}};
}

Json ToolHistoryMessages(const History& history, const std::string& system_prompt, size_t max_output) {
  Json msgs = Json::array();
  msgs.push_back({{"role", "system"}, {"content", system_prompt}});
  msgs.push_back({{"role", "user"}, {"content", history.task}});
  for (size_t i = 0; i < history.steps.size(); ++i) {
    const Step& s = history.steps[i];
    std::string id = "call_" + std::to_string(i);
    Json args = {{"command", s.command}};
    msgs.push_back({{"role", "assistant"},
                    {"content", nullptr},
                    {"tool_calls",
                     Json::array({{{"id", id},
                                   {"type", "function"},
                                   {"function",
                                    {{"name", "bash"},
                                     {"arguments", args.dump(-1, ' ', false, Json::error_handler_t::replace)}}}}})}});
    msgs.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", FormatOutcome(s, max_output)}});
  }
  return msgs;
}

OpenAISpeculator::OpenAISpeculator(OpenAIConfig config, PromptOptions prompt)
    : client_(std::move(config)), prompt_(prompt) {}

Result<std::vector<Candidate>> OpenAISpeculator::ProposeStreaming(const History& history, int k,
                                                                  const std::atomic<bool>* cancelled,
                                                                  const CandidateSink& on_candidate) {
  if (k <= 0) return std::vector<Candidate>{};
  Prompt p = BuildSpeculatorPrompt(history, k, prompt_, hints_);
  Json body;
  try {
    body = {{"messages", Json::array({{{"role", "system"}, {"content", p.system}}, {{"role", "user"}, {"content", p.user}}})},
            {"response_format", {{"type", "json_object"}}},
            {"max_tokens", 64 + 96 * k}};
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("speculator request: ") + e.what());
  }
  CandidateStreamParser parser("openai");
  std::function<void(std::string_view)> on_text;
  if (client_.config().stream) {
    on_text = [&](std::string_view t) {
      for (const auto& c : parser.Feed(t)) {
        if (on_candidate) on_candidate(c);
      }
    };
  }
  SPECULA_ASSIGN_OR_RETURN(ChatReply reply, client_.Complete(std::move(body), cancelled, on_text));
  if (!client_.config().stream) {
    for (const auto& c : parser.Feed(reply.content)) {
      if (on_candidate) on_candidate(c);
    }
  }
  if (parser.all().empty()) {
    Json j = Json::parse(reply.content, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("candidates") || !j["candidates"].is_array()) {
      return Error(Code::kInternal, "speculator: reply is not {\"candidates\":[...]}: " + reply.content.substr(0, 200));
    }
  }
  return NormalizeCandidates(parser.all(), k);
}

}  // namespace specula::speculators
