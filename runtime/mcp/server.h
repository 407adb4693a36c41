// The MCP server's protocol side (docs/mcp.md): the lifecycle (initialize,
// version negotiation, notifications/initialized, ping), tools/list and
// tools/call dispatch, progress notifications for calls that carry
// _meta.progressToken, and notifications/cancelled. It knows no tool: a
// ToolHandler (runtime/mcp/tools.h for specula's) supplies them.
//
// Threads: HandleLine runs on the reader's thread and answers everything but
// tools/call at once (so ping and tools/list are answered while a long
// command runs); each tools/call runs on a thread of its own, at most
// `max_in_flight` at a time (beyond that HandleLine waits: backpressure); one
// ticker thread sends progress. Every outgoing line goes through the writer,
// one at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/error.h"
#include "runtime/mcp/message.h"

namespace specula::mcp {

struct ToolSpec {
  std::string name;
  std::string title;
  std::string description;
  Json input_schema;             // a JSON Schema object
  Json output_schema = nullptr;  // null: the tool has no structured output
  Json annotations = nullptr;    // readOnlyHint, destructiveHint, ...
};

// What a tool call produced. `is_error`: the tool ran and failed (MCP's
// isError: the model sees it and can react), as opposed to a protocol error.
struct ToolResult {
  std::string text;             // one text content block
  Json structured = nullptr;    // structuredContent (omitted when null)
  bool is_error = false;
};

// What a running tool call can see of its request.
class CallContext {
 public:
  virtual ~CallContext() = default;
  // The client cancelled the request (notifications/cancelled): its reply
  // will be dropped.
  virtual bool cancelled() const = 0;
  // Whether the client asked for progress (_meta.progressToken): only then
  // is the call's live output worth fetching.
  virtual bool wants_progress() const { return false; }
  // The call's output so far, as it comes (any pieces): its last line goes
  // into the message of the next progress notification (docs/mcp.md
  // "Progress"). Safe from the tool's thread while the ticker reads.
  virtual void AddOutput(std::string_view data) const { (void)data; }
};

// The `message` of a progress notification: the elapsed whole seconds,
// and the last line of output when there is one, cut to about 200 bytes
// on a UTF-8 boundary. E.g. "bash: running for 12 s; output: [ 40%] Linking".
std::string ProgressMessage(const std::string& tool, int64_t seconds, std::string_view last_line);

class ToolHandler {
 public:
  virtual ~ToolHandler() = default;
  virtual std::vector<ToolSpec> Tools() const = 0;
  // Runs one tool. An Error is a protocol error (unknown tool, arguments that
  // do not match the input schema): it becomes a -32602 reply. A failure of
  // the tool itself is a ToolResult with is_error.
  virtual Result<ToolResult> Call(const std::string& name, const Json& arguments, const CallContext& ctx) = 0;
  // The client's initialize params (clientInfo, capabilities), once, before
  // any tool call.
  virtual void OnInitialize(const Json& params) { (void)params; }
};

struct ServerOptions {
  std::string name = "specula";
  std::string title = "specula";
  std::string version;
  std::string instructions;  // sent in initialize's result when not empty
  std::chrono::milliseconds progress_interval{1000};
  size_t max_in_flight = 16;
};

class Server {
 public:
  // `write` gets one line (no '\n'); it is never called concurrently.
  using Writer = std::function<void(const std::string& line)>;

  Server(ToolHandler& tools, Writer write, ServerOptions options);
  // Waits for running tool calls (their replies are still written).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Handles one line from the client (without its '\n').
  void HandleLine(std::string_view line);
  // Answers an oversized line (the reader drops its bytes).
  void RejectOversized(size_t limit);
  // Blocks until no tool call is running.
  void WaitIdle();

  // The negotiated protocol version, "" before initialize.
  std::string protocol_version() const;
  size_t in_flight() const;

 private:
  struct Call;  // a running tools/call
  class Context;

  void Write(const std::string& line);
  void HandleRequest(Message& m);
  void HandleNotification(const Message& m);
  Json InitializeResult(const Json& params);
  Json ListTools() const;
  void StartToolCall(Message& m);
  void RunToolCall(uint64_t key, std::string name, Json arguments);
  void Finish(uint64_t key, const std::string& reply);
  void Tick();

  ToolHandler& tools_;
  Writer write_;
  ServerOptions options_;

  mutable std::mutex write_mu_;  // serialises write_
  mutable std::mutex mu_;        // everything below
  std::condition_variable changed_;
  std::string version_;          // negotiated
  bool initialized_ = false;     // initialize answered
  std::map<uint64_t, std::shared_ptr<Call>> calls_;
  std::vector<std::thread> finished_;  // threads of finished calls, joined lazily
  uint64_t next_key_ = 1;
  bool stopping_ = false;
  std::thread ticker_;
};

// Serves `server` on in_fd (stdin) until EOF, or until signal_fd (a
// signalfd, or -1) becomes readable: then it returns kSignal at once,
// without waiting for running calls.
enum class StopReason { kEof, kSignal, kReadError };
StopReason ServeLines(Server& server, int in_fd, int signal_fd);

// A Writer for a file descriptor (stdout): the line plus '\n', written
// whole; write errors (a client gone) are ignored.
Server::Writer FdWriter(int fd);

}  // namespace specula::mcp
