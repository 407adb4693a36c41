#include "runtime/rpc/protocol.h"

#include <array>

namespace specula::rpc {
namespace {

bool ValidId(const Json& id) { return id.is_string() || id.is_number() || id.is_null(); }

ProtocolError Invalid(std::string message, Json id = nullptr, RawId raw_id = {}) {
  return ProtocolError{kInvalidRequest, std::move(message), std::move(id), std::move(raw_id)};
}

size_t SkipSpace(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

// End of the string token starting at t[i] == '"' (one past its closing quote).
size_t StringEnd(std::string_view t, size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') ++i;
    else if (t[i] == '"') return i + 1;
  }
  return t.size();
}

// End of the JSON value starting at t[i] (the text is known to be valid JSON).
size_t ValueEnd(std::string_view t, size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return StringEnd(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') { i = StringEnd(t, i); continue; }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' &&
         t[i] != '\n' && t[i] != '\r') {
    ++i;
  }
  return i;
}

// The text of the top-level member "id" of a JSON object known to be valid
// (the last one if repeated, as the parser keeps the last). A key may be
// spelled with escapes ("\u0069d"), so escaped keys are decoded.
std::optional<std::string_view> RawMember(std::string_view t, std::string_view name) {
  std::optional<std::string_view> found;
  size_t i = SkipSpace(t, 0);
  if (i >= t.size() || t[i] != '{') return found;
  i = SkipSpace(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    size_t key_end = StringEnd(t, i);
    std::string_view key = t.substr(i + 1, key_end - i - 2);
    bool match = key == name;
    if (!match && key.find('\\') != std::string_view::npos) {
      Json decoded = Json::parse(t.substr(i, key_end - i), nullptr, false);
      match = decoded.is_string() && decoded.get_ref<const std::string&>() == name;
    }
    i = SkipSpace(t, key_end);
    if (i >= t.size() || t[i] != ':') return found;
    i = SkipSpace(t, i + 1);
    size_t value_end = ValueEnd(t, i);
    if (match) found = t.substr(i, value_end - i);
    i = SkipSpace(t, value_end);
    if (i >= t.size() || t[i] != ',') break;
    i = SkipSpace(t, i + 1);
  }
  return found;
}

// Splices an id's text into a reply built without it.
std::string WithId(const RawId& id, std::string_view member, const std::string& value) {
  std::string out = "{\"jsonrpc\":\"2.0\",\"id\":";
  out += id.json;
  out += ",\"";
  out += member;
  out += "\":";
  out += value;
  out += '}';
  return out;
}

}  // namespace

// Deeper nesting than the limit is rejected before parsing: no method takes
// more than a few levels.
bool NestingWithinLimit(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

int JsonRpcCodeFor(Code code) { return -32000 - static_cast<int>(code); }

std::optional<Code> CodeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Code::kInternal); ++i) {
    auto code = static_cast<Code>(i);
    if (CodeName(code) == name) return code;
  }
  return std::nullopt;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Decoded DecodeRequest(std::string_view line) {
  Decoded out;
  if (!NestingWithinLimit(line)) {
    out.error = ProtocolError{kParseError, "request nested deeper than 64 levels", nullptr};
    return out;
  }
  // allow_exceptions=false: a parse failure yields a "discarded" value.
  Json doc = Json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded()) {
    out.error = ProtocolError{kParseError, "parse error: the line is not valid JSON", nullptr};
    return out;
  }
  if (doc.is_array()) {
    out.error = Invalid("batch requests are not supported; send one object per line");
    return out;
  }
  if (!doc.is_object()) {
    out.error = Invalid("a request must be a JSON object");
    return out;
  }
  Json id = nullptr;
  bool has_id = false;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!ValidId(*it)) {
      out.error = Invalid("\"id\" must be a string, a number or null");
      return out;
    }
    id = *it;
    has_id = true;
  }
  RawId raw_id{has_id ? DumpJson(id) : "null"};
  if (has_id) {
    // The exact spelling; the dump above only stands in if the scan failed.
    if (auto text = RawMember(line, "id"); text && !text->empty()) raw_id.json = std::string(*text);
  }
  auto version = doc.find("jsonrpc");
  if (version == doc.end() || !version->is_string() || *version != "2.0") {
    out.error = Invalid("\"jsonrpc\" must be \"2.0\"", id, raw_id);
    return out;
  }
  auto method = doc.find("method");
  if (method == doc.end() || !method->is_string() || method->get_ref<const std::string&>().empty()) {
    out.error = Invalid("\"method\" must be a non-empty string", id, raw_id);
    return out;
  }
  Request req;
  req.method = method->get<std::string>();
  if (auto params = doc.find("params"); params != doc.end() && !params->is_null()) {
    if (!params->is_object()) {
      out.error = ProtocolError{kInvalidParams, "\"params\" must be an object (named parameters)", id, raw_id};
      return out;
    }
    req.params = std::move(*params);
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "jsonrpc" && key != "method" && key != "params" && key != "id") {
      out.error = Invalid("unknown request member \"" + key + "\"", id, raw_id);
      return out;
    }
  }
  if (has_id) {
    req.id = std::move(id);
    req.raw_id = std::move(raw_id);
  }
  out.request = std::move(req);
  return out;
}

std::string EncodeResult(const Json& id, const Json& result) {
  return DumpJson(Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string EncodeError(const Json& id, int code, std::string_view message, const Json& data) {
  Json err{{"code", code}, {"message", message}};
  if (!data.is_null()) err["data"] = data;
  return DumpJson(Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}});
}

std::string EncodeError(const Json& id, const Error& error, int protocol_code) {
  Json data{{"kind", CodeName(error.code())}, {"errno", error.sys_errno()}};
  if (!error.hint().empty()) data["hint"] = error.hint();
  int code = protocol_code != 0 ? protocol_code : JsonRpcCodeFor(error.code());
  return EncodeError(id, code, error.message(), data);
}

std::string EncodeResult(const RawId& id, const Json& result) {
  return WithId(id, "result", DumpJson(result));
}

std::string EncodeError(const RawId& id, int code, std::string_view message, const Json& data) {
  Json err{{"code", code}, {"message", message}};
  if (!data.is_null()) err["data"] = data;
  return WithId(id, "error", DumpJson(err));
}

std::string EncodeError(const RawId& id, const Error& error, int protocol_code) {
  Json data{{"kind", CodeName(error.code())}, {"errno", error.sys_errno()}};
  if (!error.hint().empty()) data["hint"] = error.hint();
  int code = protocol_code != 0 ? protocol_code : JsonRpcCodeFor(error.code());
  return EncodeError(id, code, error.message(), data);
}

std::string EncodeRequest(const Json& id, std::string_view method, const Json& params) {
  return DumpJson(Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
}

namespace {

Code CodeFromReplyError(const Json& err) {
  if (auto data = err.find("data"); data != err.end() && data->is_object()) {
    if (auto kind = data->find("kind"); kind != data->end() && kind->is_string()) {
      if (auto code = CodeFromName(kind->get<std::string>())) return *code;
    }
  }
  int num = 0;
  if (auto c = err.find("code"); c != err.end() && c->is_number_integer()) num = c->get<int>();
  if (num <= -32000 && num >= JsonRpcCodeFor(Code::kInternal)) return static_cast<Code>(-32000 - num);
  switch (num) {
    case kMethodNotFound: return Code::kUnavailable;
    case kInvalidParams: case kInvalidRequest: case kParseError: return Code::kInvalidArgument;
    default: return Code::kInternal;
  }
}

}  // namespace

Result<Reply> DecodeReply(std::string_view line) {
  if (!NestingWithinLimit(line)) return Error(Code::kInternal, "daemon reply nested too deeply");
  Json doc = Json::parse(line.begin(), line.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Error(Code::kInternal, "daemon sent a reply that is not a JSON object");
  }
  if (doc.contains("method") && !doc.contains("id")) {
    Reply note{nullptr, Result<Json>(Json(nullptr)), true};
    if (auto m = doc.find("method"); m->is_string()) note.method = m->get<std::string>();
    auto p = doc.find("params");
    note.params = p != doc.end() && p->is_object() ? std::move(*p) : Json::object();
    return note;
  }
  Json id = doc.contains("id") ? doc["id"] : Json(nullptr);
  if (auto res = doc.find("result"); res != doc.end()) {
    return Reply{std::move(id), Result<Json>(std::move(*res))};
  }
  auto err = doc.find("error");
  if (err == doc.end() || !err->is_object()) {
    return Error(Code::kInternal, "daemon reply has neither \"result\" nor \"error\"");
  }
  std::string message = "daemon error";
  if (auto m = err->find("message"); m != err->end() && m->is_string()) message = m->get<std::string>();
  int sys_errno = 0;
  std::string hint;
  if (auto data = err->find("data"); data != err->end() && data->is_object()) {
    if (auto e = data->find("errno"); e != data->end() && e->is_number_integer()) sys_errno = e->get<int>();
    if (auto h = data->find("hint"); h != data->end() && h->is_string()) hint = h->get<std::string>();
  }
  Error error(CodeFromReplyError(*err), std::move(message), sys_errno);
  if (!hint.empty()) error.WithHint(std::move(hint));
  return Reply{std::move(id), Result<Json>(std::move(error))};
}

}  // namespace specula::rpc
