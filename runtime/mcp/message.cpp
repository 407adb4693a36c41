#include "runtime/mcp/message.h"

#include "runtime/rpc/protocol.h"

namespace specula::mcp {
namespace {

bool ValidId(const Json& id) { return id.is_string() || id.is_number_integer(); }

Parsed Fail(int code, std::string message, Json id = nullptr, bool reply = true) {
  Parsed p;
  p.error = ParseError{code, std::move(message), std::move(id), reply};
  return p;
}

}  // namespace

std::string NegotiateVersion(std::string_view requested) {
  for (auto v : kProtocolVersions) {
    if (v == requested) return std::string(v);
  }
  return std::string(kLatestProtocolVersion);
}

bool HasStructuredContent(std::string_view version) { return version >= std::string_view("2025-06-18"); }

Parsed ParseMessage(std::string_view line) {
  if (!rpc::NestingWithinLimit(line)) return Fail(kParseError, "parse error: message nested deeper than 64 levels");
  Json doc = Json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded()) return Fail(kParseError, "parse error: the line is not valid JSON");
  if (doc.is_array()) {
    return Fail(kInvalidRequest, "batches are not supported (MCP 2025-06-18): send one message per line");
  }
  if (!doc.is_object()) return Fail(kInvalidRequest, "a message must be a JSON object");
  auto id_it = doc.find("id");
  bool has_id = id_it != doc.end();
  if (has_id && !ValidId(*id_it)) return Fail(kInvalidRequest, "\"id\" must be a string or an integer");
  Json id = has_id ? *id_it : Json(nullptr);
  auto version = doc.find("jsonrpc");
  if (version == doc.end() || !version->is_string() || *version != "2.0") {
    return Fail(kInvalidRequest, "\"jsonrpc\" must be \"2.0\"", id, has_id);
  }
  Message m;
  auto method = doc.find("method");
  if (method == doc.end()) {
    // A response to a request of ours (this server sends none, so it is
    // only checked for shape and dropped by the server).
    bool has_result = doc.contains("result");
    auto error = doc.find("error");
    if (!has_id || has_result == (error != doc.end())) {
      return Fail(kInvalidRequest, "a message needs a \"method\" (request, notification) or an \"id\" and one of "
                                   "\"result\" and \"error\" (response)", id);
    }
    m.kind = Message::Kind::kResponse;
    m.id = std::move(id);
    if (error != doc.end()) m.error = *error;
    Parsed p;
    p.message = std::move(m);
    return p;
  }
  if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
    return Fail(kInvalidRequest, "\"method\" must be a non-empty string", id);
  }
  m.kind = has_id ? Message::Kind::kRequest : Message::Kind::kNotification;
  m.id = std::move(id);
  m.method = method->get<std::string>();
  if (auto params = doc.find("params"); params != doc.end()) {
    if (!params->is_object()) {
      return Fail(kInvalidParams, "\"params\" of " + m.method + " must be an object", m.id, has_id);
    }
    m.params = std::move(*params);
  }
  Parsed p;
  p.message = std::move(m);
  return p;
}

std::string EncodeResult(const Json& id, const Json& result) { return rpc::EncodeResult(id, result); }

std::string EncodeError(const Json& id, int code, std::string_view message, const Json& data) {
  return rpc::EncodeError(id, code, message, data);
}

std::string EncodeNotification(std::string_view method, const Json& params) {
  return rpc::DumpJson(Json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}});
}

std::optional<Json> ProgressToken(const Json& params) {
  if (!params.is_object()) return std::nullopt;
  auto meta = params.find("_meta");
  if (meta == params.end() || !meta->is_object()) return std::nullopt;
  auto token = meta->find("progressToken");
  if (token == meta->end() || !(token->is_string() || token->is_number_integer())) return std::nullopt;
  return *token;
}

}  // namespace specula::mcp
