// Fuzzes what an MCP client's bytes reach in `specula mcp`: the line
// framing, the message parser, and the server's dispatch (lifecycle,
// tools/list, tools/call with argument checking) over tools that answer at
// once. Invariants: nothing throws or crashes, every line yields exactly one
// of message and error, error codes are JSON-RPC's, every outgoing line is
// one line of JSON, and a request gets at most one reply.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "runtime/mcp/message.h"
#include "runtime/mcp/server.h"
#include "runtime/rpc/framing.h"

using namespace specula;
using specula::fuzz::Check;
using namespace specula::mcp;

namespace {

// Tools with schemas like specula's, answering without a daemon.
class EchoTools : public ToolHandler {
 public:
  std::vector<ToolSpec> Tools() const override {
    return {ToolSpec{"echo", "Echo", "echoes", Json{{"type", "object"}}, Json{{"type", "object"}}, nullptr}};
  }
  Result<ToolResult> Call(const std::string& name, const Json& arguments, const CallContext&) override {
    if (name != "echo") return Error(Code::kInvalidArgument, "unknown tool");
    if (arguments.contains("fail")) return ToolResult{"failed", nullptr, true};
    return ToolResult{arguments.dump(-1, ' ', false, Json::error_handler_t::replace), arguments, false};
  }
};

void CheckOut(const std::string& line) {
  Check(line.find('\n') == std::string::npos);
  Json j = Json::parse(line, nullptr, false);
  Check(!j.is_discarded() && j.is_object() && j["jsonrpc"] == "2.0");
  if (j.contains("error")) {
    int c = j["error"]["code"];
    Check(c == kParseError || c == kInvalidRequest || c == kMethodNotFound || c == kInvalidParams ||
          c == kInternalError);
  }
}

Server& TheServer() {
  static EchoTools tools;
  static ServerOptions options = [] {
    ServerOptions o;
    o.max_in_flight = 2;
    o.progress_interval = std::chrono::milliseconds(1);
    return o;
  }();
  static Server server(tools, CheckOut, options);
  return server;
}

void One(std::string_view line) {
  Parsed p = ParseMessage(line);
  Check(p.message.has_value() != p.error.has_value());
  if (p.error) {
    int c = p.error->code;
    Check(c == kParseError || c == kInvalidRequest || c == kInvalidParams);
    CheckOut(EncodeError(p.error->id, c, p.error->message));
  } else {
    Check(p.message->params.is_object());
    (void)ProgressToken(p.message->params);
  }
  TheServer().HandleLine(line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  One(input);
  rpc::LineBuffer buf(1024);
  buf.Append(input);
  while (auto line = buf.NextLine()) One(*line);
  (void)buf.Overflowed();
  TheServer().WaitIdle();
  return 0;
}
