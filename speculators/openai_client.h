// OpenAI-compatible chat completions (POST {base_url}/chat/completions):
// the client (plain and streamed replies, HTTP errors mapped to Codes) and
// the speculator over it. The agent-side actor (agents/openai_client.h)
// uses the same client.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "speculators/history.h"
#include "speculators/model_speculator.h"

namespace specula::speculators {

struct OpenAIConfig {
  std::string base_url;  // e.g. https://api.openai.com/v1 (no trailing /chat/completions)
  std::string api_key;   // may be empty for local servers
  std::string model;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{120000};
  double temperature = 0;
  bool stream = false;   // the speculator streams its reply (SSE) when true
};

// Fills empty fields from OPENAI_BASE_URL, OPENAI_API_KEY, SPECULA_MODEL (and
// the base URL from https://api.openai.com/v1 if still empty).
OpenAIConfig OpenAIConfigFromEnvironment(OpenAIConfig base = {});

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as the model wrote it
};

struct ChatReply {
  std::string content;
  std::vector<ToolCall> tool_calls;
  uint64_t total_tokens = 0;
  std::string finish_reason;
};

class ChatClient {
 public:
  explicit ChatClient(OpenAIConfig config) : config_(std::move(config)) {}
  // One request; `body` gets "model" (and "temperature") added. With
  // `on_text`, the request streams ("stream": true) and each content delta
  // is passed on as it arrives. Errors: kDeadlineExceeded on timeout,
  // kAborted when `cancelled` became true, kUnavailable when the server
  // cannot be reached or answers 5xx, kResourceExhausted on 429,
  // kPermissionDenied on 401/403, kInternal for other HTTP or protocol
  // errors (with the server's error message).
  Result<ChatReply> Complete(nlohmann::json body, const std::atomic<bool>* cancelled,
                             const std::function<void(std::string_view)>& on_text = {}) const;
  const OpenAIConfig& config() const { return config_; }

 private:
  OpenAIConfig config_;
};

// Chat messages for a history: system prompt, task, then one assistant
// `bash` tool call and one tool result per step (outputs capped at
// `max_output` bytes each).
nlohmann::json ToolHistoryMessages(const History& history, const std::string& system_prompt,
                                   size_t max_output = 16 * 1024);
// The `bash` function tool definition.
nlohmann::json BashTool();

// The speculator over a (fast) model: sends BuildSpeculatorPrompt's text and
// reads {"candidates":[{"command","confidence"}]} (response_format
// json_object; streamed when config.stream).
class OpenAISpeculator : public ModelSpeculator {
 public:
  explicit OpenAISpeculator(OpenAIConfig config, PromptOptions prompt = {});
  Result<std::vector<Candidate>> ProposeStreaming(const History& history, int k, const std::atomic<bool>* cancelled,
                                                  const CandidateSink& on_candidate) override;
  std::string Name() const override { return "openai:" + client_.config().model; }

 private:
  ChatClient client_;
  PromptOptions prompt_;
};

}  // namespace specula::speculators
