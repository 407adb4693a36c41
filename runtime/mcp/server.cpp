#include "runtime/mcp/server.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>

#include "runtime/rpc/framing.h"

namespace specula::mcp {

struct Server::Call {
  Json id;
  std::optional<Json> progress_token;
  std::string tool;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<bool> cancelled{false};
  double last_progress = 0;
  std::thread thread;
  // The end of the call's output so far (AddOutput), for progress
  // messages; its own lock, since the tool's thread writes it while the
  // ticker holds the server's.
  std::mutex output_mu;
  std::string output_tail;
};

namespace {

// Keeps this much of a call's output: enough for its last line.
constexpr size_t kOutputTail = 4096;
constexpr size_t kMessageLine = 200;

// The last line with any text of `tail`, without its '\n' or '\r'.
std::string_view LastLine(std::string_view tail) {
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.remove_suffix(1);
  size_t nl = tail.find_last_of('\n');
  std::string_view line = nl == std::string_view::npos ? tail : tail.substr(nl + 1);
  // A progress bar redraws with '\r': its latest state is after the last one.
  if (size_t cr = line.find_last_of('\r'); cr != std::string_view::npos) line = line.substr(cr + 1);
  return line;
}

}  // namespace

std::string ProgressMessage(const std::string& tool, int64_t seconds, std::string_view last_line) {
  std::string msg = tool + ": running for " + std::to_string(seconds) + " s";
  if (last_line.empty()) return msg;
  if (last_line.size() > kMessageLine) {
    size_t cut = kMessageLine;
    // Back up to the start of a UTF-8 character.
    while (cut > 0 && (static_cast<unsigned char>(last_line[cut]) & 0xC0) == 0x80) --cut;
    last_line = last_line.substr(0, cut);
  }
  return msg + "; output: " + std::string(last_line);
}

class Server::Context : public CallContext {
 public:
  explicit Context(std::shared_ptr<Call> call) : call_(std::move(call)) {}
  bool cancelled() const override { return call_->cancelled.load(); }
  bool wants_progress() const override { return call_->progress_token.has_value(); }
  void AddOutput(std::string_view data) const override {
    std::lock_guard lock(call_->output_mu);
    std::string& tail = call_->output_tail;
    tail.append(data);
    if (tail.size() > kOutputTail) {
      size_t cut = tail.size() - kOutputTail;
      // Never keep half a character at the front.
      while (cut < tail.size() && (static_cast<unsigned char>(tail[cut]) & 0xC0) == 0x80) ++cut;
      tail.erase(0, cut);
    }
  }

 private:
  std::shared_ptr<Call> call_;
};

Server::Server(ToolHandler& tools, Writer write, ServerOptions options)
    : tools_(tools), write_(std::move(write)), options_(std::move(options)) {
  if (options_.max_in_flight == 0) options_.max_in_flight = 1;
  ticker_ = std::thread([this] { Tick(); });
}

Server::~Server() {
  WaitIdle();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  ticker_.join();
  for (auto& t : finished_) t.join();
}

void Server::Write(const std::string& line) {
  std::lock_guard lock(write_mu_);
  write_(line);
}

std::string Server::protocol_version() const {
  std::lock_guard lock(mu_);
  return version_;
}

size_t Server::in_flight() const {
  std::lock_guard lock(mu_);
  return calls_.size();
}

void Server::WaitIdle() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return calls_.empty(); });
}

void Server::RejectOversized(size_t limit) {
  Write(EncodeError(nullptr, kInvalidRequest, "message exceeds " + std::to_string(limit) + " bytes; dropped"));
}

void Server::HandleLine(std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;  // blank lines are no messages
  Parsed p = ParseMessage(line);
  if (p.error) {
    if (p.error->reply) Write(EncodeError(p.error->id, p.error->code, p.error->message));
    return;
  }
  Message& m = *p.message;
  switch (m.kind) {
    case Message::Kind::kRequest: HandleRequest(m); break;
    case Message::Kind::kNotification: HandleNotification(m); break;
    case Message::Kind::kResponse: break;  // this server sends no requests
  }
}

void Server::HandleNotification(const Message& m) {
  if (m.method == "notifications/cancelled") {
    auto request_id = m.params.find("requestId");
    if (request_id == m.params.end()) return;
    std::lock_guard lock(mu_);
    for (auto& [key, call] : calls_) {
      if (call->id == *request_id) call->cancelled = true;
    }
  }
  // notifications/initialized and anything else: nothing to do.
}

void Server::HandleRequest(Message& m) {
  if (m.method == "ping") {
    Write(EncodeResult(m.id, Json::object()));
    return;
  }
  if (m.method == "initialize") {
    auto version = m.params.find("protocolVersion");
    if (version == m.params.end() || !version->is_string()) {
      Write(EncodeError(m.id, kInvalidParams, "initialize: \"protocolVersion\" must be a string"));
      return;
    }
    bool again;
    {
      std::lock_guard lock(mu_);
      again = initialized_;
    }
    if (again) {
      Write(EncodeError(m.id, kInvalidRequest, "initialize: the session is already initialized"));
      return;
    }
    tools_.OnInitialize(m.params);
    Write(EncodeResult(m.id, InitializeResult(m.params)));
    return;
  }
  bool ready;
  {
    std::lock_guard lock(mu_);
    ready = initialized_;
  }
  if (!ready) {
    Write(EncodeError(m.id, kInvalidRequest, m.method + ": the server is not initialized (send initialize first)"));
    return;
  }
  if (m.method == "tools/list") {
    if (auto cursor = m.params.find("cursor"); cursor != m.params.end() && !cursor->is_string()) {
      Write(EncodeError(m.id, kInvalidParams, "tools/list: \"cursor\" must be a string"));
      return;
    }
    Write(EncodeResult(m.id, ListTools()));
    return;
  }
  if (m.method == "tools/call") {
    StartToolCall(m);
    return;
  }
  Write(EncodeError(m.id, kMethodNotFound, "method not found: " + m.method));
}

Json Server::InitializeResult(const Json& params) {
  std::string version = NegotiateVersion(params["protocolVersion"].get<std::string>());
  {
    std::lock_guard lock(mu_);
    version_ = version;
    initialized_ = true;
  }
  Json info{{"name", options_.name}, {"version", options_.version}};
  if (HasStructuredContent(version)) info["title"] = options_.title;
  Json result{{"protocolVersion", version},
              {"capabilities", {{"tools", {{"listChanged", false}}}}},
              {"serverInfo", std::move(info)}};
  if (!options_.instructions.empty()) result["instructions"] = options_.instructions;
  return result;
}

Json Server::ListTools() const {
  bool structured = HasStructuredContent(protocol_version());
  Json tools = Json::array();
  for (const ToolSpec& t : tools_.Tools()) {
    Json j{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
    if (structured) {
      j["title"] = t.title;
      if (!t.output_schema.is_null()) j["outputSchema"] = t.output_schema;
    }
    if (!t.annotations.is_null()) j["annotations"] = t.annotations;
    tools.push_back(std::move(j));
  }
  return Json{{"tools", std::move(tools)}};
}

void Server::StartToolCall(Message& m) {
  auto name = m.params.find("name");
  if (name == m.params.end() || !name->is_string()) {
    Write(EncodeError(m.id, kInvalidParams, "tools/call: \"name\" must be a string"));
    return;
  }
  Json arguments = Json::object();
  if (auto a = m.params.find("arguments"); a != m.params.end() && !a->is_null()) {
    if (!a->is_object()) {
      Write(EncodeError(m.id, kInvalidParams, "tools/call: \"arguments\" must be an object"));
      return;
    }
    arguments = std::move(*a);
  }
  auto call = std::make_shared<Call>();
  call->id = m.id;
  call->progress_token = ProgressToken(m.params);
  call->tool = name->get<std::string>();
  std::unique_lock lock(mu_);
  for (const auto& [key, other] : calls_) {
    if (other->id == m.id) {
      lock.unlock();
      Write(EncodeError(m.id, kInvalidRequest, "request id " + m.id.dump() + " is already in use by a running call"));
      return;
    }
  }
  // Backpressure: at most max_in_flight calls run; the reader waits here.
  changed_.wait(lock, [&] { return calls_.size() < options_.max_in_flight || stopping_; });
  for (auto& t : finished_) t.join();
  finished_.clear();
  uint64_t key = next_key_++;
  calls_[key] = call;
  call->thread = std::thread([this, key, tool = call->tool, arguments = std::move(arguments)]() mutable {
    RunToolCall(key, std::move(tool), std::move(arguments));
  });
}

void Server::RunToolCall(uint64_t key, std::string name, Json arguments) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lock(mu_);
    call = calls_.at(key);
  }
  Context ctx(call);
  std::string reply;
  try {
    Result<ToolResult> r = tools_.Call(name, arguments, ctx);
    if (!r.ok()) {
      reply = EncodeError(call->id, kInvalidParams, r.error().message());
    } else {
      Json result{{"content", Json::array({Json{{"type", "text"}, {"text", r->text}}})}, {"isError", r->is_error}};
      if (!r->structured.is_null() && HasStructuredContent(protocol_version())) {
        result["structuredContent"] = std::move(r->structured);
      }
      reply = EncodeResult(call->id, result);
    }
  } catch (const std::exception& e) {
    // A bug in a tool must not kill the server: the client gets an error.
    reply = EncodeError(call->id, kInternalError, std::string("internal error in tool ") + name + ": " + e.what());
  }
  Finish(key, reply);
}

void Server::Finish(uint64_t key, const std::string& reply) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(key);
  // Written under mu_, so no progress notification of this call follows its reply.
  if (!it->second->cancelled) Write(reply);
  finished_.push_back(std::move(it->second->thread));
  calls_.erase(it);
  changed_.notify_all();
}

void Server::Tick() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, options_.progress_interval);
    if (stopping_) break;
    auto now = std::chrono::steady_clock::now();
    for (auto& [key, call] : calls_) {
      if (!call->progress_token || call->cancelled) continue;
      double elapsed = std::chrono::duration<double>(now - call->started).count();
      double progress = std::floor(elapsed * 10) / 10;  // seconds, to 0.1 s
      // Progress must increase with every notification (and the first one
      // waits a whole interval, so quick calls send none).
      if (progress <= call->last_progress ||
          elapsed * 1000 < static_cast<double>(options_.progress_interval.count())) {
        continue;
      }
      call->last_progress = progress;
      std::string message;
      {
        std::lock_guard out(call->output_mu);
        message = ProgressMessage(call->tool, static_cast<int64_t>(elapsed), LastLine(call->output_tail));
      }
      Json params{{"progressToken", *call->progress_token}, {"progress", progress}, {"message", message}};
      Write(EncodeNotification("notifications/progress", params));
    }
  }
}

StopReason ServeLines(Server& server, int in_fd, int signal_fd) {
  rpc::LineBuffer in(kMaxMessageBytes);
  bool skipping = false;  // dropping the rest of an oversized line
  char buf[65536];
  for (;;) {
    pollfd fds[2] = {{in_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    int n = ::poll(fds, signal_fd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StopReason::kReadError;
    if (signal_fd >= 0 && (fds[1].revents & POLLIN)) return StopReason::kSignal;
    if (fds[0].revents == 0) continue;
    ssize_t got = ::read(in_fd, buf, sizeof(buf));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return StopReason::kReadError;
    if (got == 0) {
      // A last line without its '\n' is still a message.
      if (!skipping && in.buffered() > 0) {
        in.Append("\n");
        while (auto line = in.NextLine()) server.HandleLine(*line);
      }
      return StopReason::kEof;
    }
    std::string_view bytes(buf, static_cast<size_t>(got));
    if (skipping) {
      size_t nl = bytes.find('\n');
      if (nl == std::string_view::npos) continue;
      bytes.remove_prefix(nl + 1);
      skipping = false;
    }
    in.Append(bytes);
    while (auto line = in.NextLine()) {
      if (line->size() > kMaxMessageBytes) server.RejectOversized(kMaxMessageBytes);
      else server.HandleLine(*line);
    }
    if (in.Overflowed()) {
      server.RejectOversized(kMaxMessageBytes);
      in = rpc::LineBuffer(kMaxMessageBytes);
      skipping = true;
    }
  }
}

Server::Writer FdWriter(int fd) {
  return [fd](const std::string& line) {
    std::string data = line + "\n";
    std::string_view left(data);
    while (!left.empty()) {
      ssize_t n = ::write(fd, left.data(), left.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the client is gone; the next read sees EOF
      left.remove_prefix(static_cast<size_t>(n));
    }
  };
}

}  // namespace specula::mcp
