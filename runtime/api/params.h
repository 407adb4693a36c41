// Typed access to a request's named params with errors a caller can act on
// ("session.create: param \"name\" must be a string"). Unknown params are
// rejected (Finish) so a misspelt optional param is not silently ignored.
// DecodeParams (wire.h) reads every request with it.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace specula::api {

using Json = nlohmann::json;

class Params {
 public:
  // `method` only names the call in error messages.
  Params(std::string_view method, const Json& params) : method_(method), params_(params) {}

  Result<std::string> String(std::string_view key);  // required, non-empty
  Result<std::string> OptString(std::string_view key, std::string fallback = "");
  // An optional non-negative integer no greater than max.
  Result<uint64_t> OptUint(std::string_view key, uint64_t fallback, uint64_t max);
  // An optional boolean.
  Result<bool> OptBool(std::string_view key, bool fallback);
  // An optional number in [0, 1].
  Result<double> OptProbability(std::string_view key, double fallback);
  // An optional object: null when absent; its keys are the caller's to check.
  Result<const Json*> OptObject(std::string_view key);
  // Fails when params holds a key no accessor asked for.
  Status Finish() const;

 private:
  Error Bad(std::string_view key, std::string_view what) const;
  const Json* Get(std::string_view key);

  std::string method_;
  const Json& params_;
  std::set<std::string, std::less<>> used_;
};

}  // namespace specula::api
