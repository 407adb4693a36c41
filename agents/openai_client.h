// The actor over a real model: OpenAI-compatible chat completions with the
// `bash` tool. The client (speculators/openai_client.h, libcurl) and the
// model-backed speculators live in speculators/; the names below keep the
// agent side's spelling.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "agents/actor.h"
#include "agents/speculator.h"
#include "speculators/openai_client.h"

namespace specula::agents {

using speculators::BashTool;
using speculators::ChatClient;
using speculators::ChatReply;
using speculators::OpenAIConfig;
using speculators::OpenAIConfigFromEnvironment;
using speculators::OpenAISpeculator;
using speculators::ToolCall;

// The messages for a history: system prompt, task, then one assistant
// tool call and one tool result per turn (outputs capped at 16 KiB).
nlohmann::json HistoryMessages(const History& history, const std::string& system_prompt);

// Each call sends the history with the bash tool; a bash tool call is the
// next command, a reply without one means done.
class OpenAIActor : public Actor {
 public:
  explicit OpenAIActor(OpenAIConfig config);
  Result<std::unique_ptr<ActorCall>> Launch(const History& history) override;
  std::string Name() const override { return "openai:" + client_.config().model; }

 private:
  ChatClient client_;
};

}  // namespace specula::agents
