// The Anthropic Messages API (POST {base_url}/v1/messages, headers
// x-api-key and anthropic-version), plain or streamed (SSE events
// message_start, content_block_start, content_block_delta (text_delta),
// content_block_stop, message_delta, message_stop, ping, error), and the
// speculator over it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "speculators/model_speculator.h"

namespace specula::speculators {

struct AnthropicConfig {
  std::string base_url;  // e.g. https://api.anthropic.com (no trailing /v1/messages)
  std::string api_key;
  std::string model;
  std::string version = "2023-06-01";  // the anthropic-version header
  int max_tokens = 512;
  double temperature = 0;
  bool stream = true;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{60000};
};

// Fills empty fields from ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY,
// SPECULA_ANTHROPIC_MODEL (base URL default https://api.anthropic.com).
AnthropicConfig AnthropicConfigFromEnvironment(AnthropicConfig base = {});

struct MessagesReply {
  std::string text;         // the text blocks joined
  std::string stop_reason;  // end_turn, max_tokens, stop_sequence, ...
  uint64_t input_tokens = 0, output_tokens = 0;
};

class MessagesClient {
 public:
  explicit MessagesClient(AnthropicConfig config) : config_(std::move(config)) {}
  // One request with `system` and a single user message. With `on_text` and
  // config.stream, text deltas are passed on as they arrive. Errors as
  // ChatClient (openai_client.h); an error body {"type":"error","error":
  // {"type":..,"message":..}} (HTTP or an in-stream "error" event) gives its
  // message; HTTP 429 -> kResourceExhausted, 529 (overloaded) and 5xx ->
  // kUnavailable, 401/403 -> kPermissionDenied, 400 -> kInvalidArgument.
  Result<MessagesReply> Create(const std::string& system, const std::string& user,
                               const std::atomic<bool>* cancelled,
                               const std::function<void(std::string_view)>& on_text = {}) const;
  const AnthropicConfig& config() const { return config_; }

 private:
  AnthropicConfig config_;
};

class AnthropicSpeculator : public ModelSpeculator {
 public:
  explicit AnthropicSpeculator(AnthropicConfig config, PromptOptions prompt = {});
  Result<std::vector<Candidate>> ProposeStreaming(const History& history, int k, const std::atomic<bool>* cancelled,
                                                  const CandidateSink& on_candidate) override;
  std::string Name() const override { return "anthropic:" + client_.config().model; }

 private:
  MessagesClient client_;
  PromptOptions prompt_;
};

}  // namespace specula::speculators
