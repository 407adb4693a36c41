#include "agents/openai_client.h"

#include <curl/curl.h>

#include <cstdlib>
#include <memory>

namespace specula::agents {
namespace {

using Json = nlohmann::json;
constexpr size_t kMaxResponseBytes = 16u << 20;
// Tool results sent back to the model are capped: a huge output would blow
// the context window and the cost.
constexpr size_t kMaxToolOutput = 16 * 1024;

constexpr const char* kActorPrompt =
    "You are a careful Linux administration agent. Use the bash tool to run one shell "
    "command at a time; you see its exit code, stdout and stderr. The work directory is $W. "
    "When the task is complete, reply with a short summary and no tool call.";
constexpr const char* kSpeculatorPrompt =
    "You predict the next bash command that an administration agent will run. Reply with a "
    "JSON object {\"candidates\":[{\"command\":\"...\",\"confidence\":0.0}]} listing up to K "
    "distinct exact commands, most likely first; confidence is your probability (0..1) that "
    "the agent's next command is exactly that string.";

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct Sink {
  std::string data;
  bool overflow = false;
};

size_t WriteBody(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t n = size * nmemb;
  if (sink->data.size() + n > kMaxResponseBytes) {
    sink->overflow = true;
    return 0;  // makes libcurl fail the transfer
  }
  sink->data.append(ptr, n);
  return n;
}

// libcurl calls this often during a transfer; a non-zero return aborts it.
int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancelled = static_cast<const std::atomic<bool>*>(user);
  return cancelled && cancelled->load() ? 1 : 0;
}

std::string Truncate(const std::string& s) {
  if (s.size() <= kMaxToolOutput) return s;
  return s.substr(0, kMaxToolOutput) + "\n[... truncated]";
}

std::string FormatOutcome(const ActionOutcome& o) {
  std::string out = "exit_code: " + std::to_string(o.exit_code);
  if (o.signal) out += " (signal " + std::to_string(o.signal) + ")";
  out += "\nstdout:\n" + Truncate(o.stdout_text) + "\nstderr:\n" + Truncate(o.stderr_text);
  return out;
}

Result<ChatReply> ParseReply(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Code::kInternal, "chat completions: reply is not a JSON object");
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) {
    return Error(Code::kInternal, "chat completions: reply has no choices");
  }
  const Json& msg = j["choices"][0].value("message", Json::object());
  ChatReply r;
  if (msg.contains("content") && msg["content"].is_string()) r.content = msg["content"];
  if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
    for (const auto& tc : msg["tool_calls"]) {
      ToolCall call;
      call.id = tc.value("id", "");
      Json fn = tc.value("function", Json::object());
      call.name = fn.value("name", "");
      call.arguments = fn.value("arguments", "");
      r.tool_calls.push_back(std::move(call));
    }
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    r.total_tokens = j["usage"].value("total_tokens", uint64_t{0});
  }
  return r;
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

Result<ChatReply> ChatClient::Complete(Json body, const std::atomic<bool>* cancelled) const {
  if (config_.model.empty()) {
    return Error(Code::kInvalidArgument, "chat completions: no model")
        .WithHint("set SPECULA_MODEL or the model option");
  }
  if (config_.base_url.empty()) return Error(Code::kInvalidArgument, "chat completions: no base URL");
  std::string payload;
  try {
    body["model"] = config_.model;
    body["temperature"] = config_.temperature;
    payload = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("chat completions: request: ") + e.what());
  }
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Error(Code::kInternal, "chat completions: curl_easy_init failed");
  std::string url = config_.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/chat/completions";
  curl_slist* raw = curl_slist_append(nullptr, "Content-Type: application/json");
  // No "Expect: 100-continue" round trip for large prompts.
  raw = curl_slist_append(raw, "Expect:");
  if (!config_.api_key.empty()) {
    raw = curl_slist_append(raw, ("Authorization: Bearer " + config_.api_key).c_str());
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);
  Sink sink;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM-based DNS timeouts
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancelled));
  CURLcode rc = curl_easy_perform(c);
  std::string what = "chat completions " + url;
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_OPERATION_TIMEDOUT:
      return Error(Code::kDeadlineExceeded, what + ": timed out");
    case CURLE_ABORTED_BY_CALLBACK:
      return Error(Code::kAborted, what + ": cancelled");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Error(Code::kUnavailable, what + ": " + curl_easy_strerror(rc));
    default:
      if (sink.overflow) return Error(Code::kResourceExhausted, what + ": reply too large");
      return Error(Code::kInternal, what + ": " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    std::string detail = sink.data.substr(0, 512);
    Json j = Json::parse(sink.data, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
      detail = j["error"].value("message", detail);
    }
    Code code = status == 401 || status == 403 ? Code::kPermissionDenied
                : status == 429               ? Code::kResourceExhausted
                : status >= 500               ? Code::kUnavailable
                                              : Code::kInternal;
    return Error(code, what + ": HTTP " + std::to_string(status) + ": " + detail);
  }
  try {
    return ParseReply(sink.data);
  } catch (const std::exception& e) {
    return Error(Code::kInternal, what + ": bad reply: " + e.what());
  }
}

Json BashTool() {
  return {{"type", "function"},
          {"function",
           {{"name", "bash"},
            {"description", "Run one bash command in the work directory and return its output."},
            {"parameters",
             {{"type", "object"},
              {"properties", {{"command", {{"type", "string"}}}}},
              {"required", {"command"}}}}}}};
}

Json HistoryMessages(const History& history, const std::string& system_prompt) {
  Json msgs = Json::array();
  msgs.push_back({{"role", "system"}, {"content", system_prompt}});
  msgs.push_back({{"role", "user"}, {"content", history.task}});
  for (size_t i = 0; i < history.turns.size(); ++i) {
    const Turn& t = history.turns[i];
    std::string id = "call_" + std::to_string(i);
    Json args = {{"command", t.command}};
    msgs.push_back(
        {{"role", "assistant"},
         {"content", nullptr},
         {"tool_calls",
          Json::array({{{"id", id},
                        {"type", "function"},
                        {"function", {{"name", "bash"}, {"arguments", args.dump(-1, ' ', false, Json::error_handler_t::replace)}}}}})}});
    msgs.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", FormatOutcome(t.outcome)}});
  }
  return msgs;
}

OpenAIActor::OpenAIActor(OpenAIConfig config) : client_(std::move(config)) {}

Result<std::unique_ptr<ActorCall>> OpenAIActor::Launch(const History& history) {
  Json body;
  try {
    body = {{"messages", HistoryMessages(history, kActorPrompt)},
            {"tools", Json::array({BashTool()})},
            {"tool_choice", "auto"}};
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("actor request: ") + e.what());
  }
  ChatClient client = client_;
  return std::unique_ptr<ActorCall>(new ThreadedActorCall(
      [client, body](const std::atomic<bool>& cancelled) -> Result<ActorDecision> {
        SPECULA_ASSIGN_OR_RETURN(ChatReply reply, client.Complete(body, &cancelled));
        ActorDecision d;
        d.tokens = reply.total_tokens;
        d.message = reply.content;
        for (const auto& tc : reply.tool_calls) {
          if (tc.name != "bash") continue;
          Json args = Json::parse(tc.arguments, nullptr, false);
          if (args.is_discarded() || !args.is_object() || !args.contains("command") ||
              !args["command"].is_string()) {
            return Error(Code::kInternal, "actor: bash tool call without a string command: " +
                                              tc.arguments.substr(0, 200));
          }
          d.command = args["command"].get<std::string>();
          return d;
        }
        d.done = true;
        return d;
      }));
}

OpenAISpeculator::OpenAISpeculator(OpenAIConfig config) : client_(std::move(config)) {}

Result<std::vector<Candidate>> OpenAISpeculator::Propose(const History& history, int k) {
  if (k <= 0) return std::vector<Candidate>{};
  Json body;
  try {
    std::string prompt = std::string(kSpeculatorPrompt) + " K = " + std::to_string(k) + ".";
    body = {{"messages", HistoryMessages(history, prompt)},
            {"response_format", {{"type", "json_object"}}}};
    body["messages"].push_back(
        {{"role", "user"},
         {"content", "Predict the agent's next command now. Reply with the JSON object only."}});
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("speculator request: ") + e.what());
  }
  SPECULA_ASSIGN_OR_RETURN(ChatReply reply, client_.Complete(std::move(body), nullptr));
  Json j = Json::parse(reply.content, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("candidates") || !j["candidates"].is_array()) {
    return Error(Code::kInternal, "speculator: reply is not {\"candidates\":[...]}: " +
                                      reply.content.substr(0, 200));
  }
  std::vector<Candidate> out;
  for (const auto& c : j["candidates"]) {
    if (!c.is_object() || !c.contains("command") || !c["command"].is_string()) continue;
    double conf = c.contains("confidence") && c["confidence"].is_number() ? c["confidence"].get<double>() : 0.0;
    out.push_back({c["command"].get<std::string>(), conf, "openai"});
  }
  return NormalizeCandidates(std::move(out), k);
}

}  // namespace specula::agents
