// A small blocking client for OpenAI-compatible chat completions
// (POST {base_url}/chat/completions) over libcurl, with connect and total
// timeouts and cancellation through libcurl's progress callback; plus the
// actor and speculator built on it.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agents/actor.h"
#include "agents/speculator.h"
#include "common/error.h"

namespace specula::agents {

struct OpenAIConfig {
  std::string base_url;  // e.g. https://api.openai.com/v1 (no trailing /chat/completions)
  std::string api_key;   // may be empty for local servers
  std::string model;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{120000};
  double temperature = 0;
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
};

class ChatClient {
 public:
  explicit ChatClient(OpenAIConfig config) : config_(std::move(config)) {}
  // One request; `body` gets "model" (and "temperature") added. Errors:
  // kDeadlineExceeded on timeout, kAborted when `cancelled` became true,
  // kUnavailable when the server cannot be reached, kInternal for HTTP or
  // protocol errors (with the server's error message).
  Result<ChatReply> Complete(nlohmann::json body, const std::atomic<bool>* cancelled) const;
  const OpenAIConfig& config() const { return config_; }

 private:
  OpenAIConfig config_;
};

// The messages for a history: system prompt, task, then one assistant
// tool call and one tool result per turn.
nlohmann::json HistoryMessages(const History& history, const std::string& system_prompt);
// The `bash` function tool definition.
nlohmann::json BashTool();

// The actor over a real model: each call sends the history with the bash tool;
// a bash tool call is the next command, a reply without one means done.
class OpenAIActor : public Actor {
 public:
  explicit OpenAIActor(OpenAIConfig config);
  Result<std::unique_ptr<ActorCall>> Launch(const History& history) override;
  std::string Name() const override { return "openai:" + client_.config().model; }

 private:
  ChatClient client_;
};

// The speculator over a (fast) model: asks for k candidate commands with
// confidences as a JSON object {"candidates":[{"command":..,"confidence":..}]}.
class OpenAISpeculator : public Speculator {
 public:
  explicit OpenAISpeculator(OpenAIConfig config);
  Result<std::vector<Candidate>> Propose(const History& history, int k) override;
  std::string Name() const override { return "openai:" + client_.config().model; }

 private:
  ChatClient client_;
};

}  // namespace specula::agents
