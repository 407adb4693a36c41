#include "agents/openai_client.h"

namespace specula::agents {
namespace {

using Json = nlohmann::json;

constexpr const char* kActorPrompt =
    "You are a careful Linux administration agent. Use the bash tool to run one shell "
    "command at a time; you see its exit code, stdout and stderr. The work directory is $W. "
    "When the task is complete, reply with a short summary and no tool call.";

}  // namespace

Json HistoryMessages(const History& history, const std::string& system_prompt) {
  return speculators::ToolHistoryMessages(ToSpeculatorHistory(history), system_prompt, 16 * 1024);
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

}  // namespace specula::agents
