#include "runtime/api/params.h"

namespace specula::api {

Error Params::Bad(std::string_view key, std::string_view what) const {
  return Error(Code::kInvalidArgument,
               method_ + ": param \"" + std::string(key) + "\" " + std::string(what))
      .WithHint("see docs/api.md for " + method_ + "'s params");
}

const Json* Params::Get(std::string_view key) {
  used_.emplace(key);
  auto it = params_.find(key);
  if (it == params_.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::string> Params::String(std::string_view key) {
  const Json* v = Get(key);
  if (v == nullptr) return Bad(key, "is required");
  if (!v->is_string()) return Bad(key, "must be a string");
  if (v->get_ref<const std::string&>().empty()) return Bad(key, "must not be empty");
  return v->get<std::string>();
}

Result<std::string> Params::OptString(std::string_view key, std::string fallback) {
  const Json* v = Get(key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) return Bad(key, "must be a string");
  return v->get<std::string>();
}

Result<uint64_t> Params::OptUint(std::string_view key, uint64_t fallback, uint64_t max) {
  const Json* v = Get(key);
  if (v == nullptr) return fallback;
  if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0)) {
    return Bad(key, "must be a non-negative integer");
  }
  uint64_t n = v->get<uint64_t>();
  if (n > max) return Bad(key, "must be at most " + std::to_string(max));
  return n;
}

Result<bool> Params::OptBool(std::string_view key, bool fallback) {
  const Json* v = Get(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return Bad(key, "must be true or false");
  return v->get<bool>();
}

Result<double> Params::OptProbability(std::string_view key, double fallback) {
  const Json* v = Get(key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) return Bad(key, "must be a number");
  double d = v->get<double>();
  if (!(d >= 0 && d <= 1)) return Bad(key, "must be between 0 and 1");
  return d;
}

Result<const Json*> Params::OptObject(std::string_view key) {
  const Json* v = Get(key);
  if (v == nullptr) return v;
  if (!v->is_object()) return Bad(key, "must be an object");
  return v;
}

Status Params::Finish() const {
  for (const auto& [key, value] : params_.items()) {
    if (!used_.contains(key)) {
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      return Bad(key, "is not a param of this method (known: " + (known.empty() ? "none" : known) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace specula::api
