// The built-in speculator's model: template counts (count_table.h) pooled
// over every training agent and per agent, the smoothing parameters, and the
// scorer that turns a candidate's estimates into a calibrated probability
// (a logistic model fitted on cross-validated predictions, then an isotonic
// map). It holds derived statistics only: no outputs, no here-document
// bodies, no command longer than kMaxTemplateBytes, no template seen in
// fewer than two tasks.
//
// File format (JSON, docs/speculators.md): {"format":"specula-builtin-model",
// "version":1, "meta":{...}, "params":{...}, "generic":TABLE,
// "agents":{NAME:TABLE}, "scorers":{"known":SCORER,"unknown":SCORER}}.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "speculators/count_table.h"

namespace specula::speculators {

// The scorer's inputs, in this order (docs/speculators.md).
inline constexpr size_t kFeatures = 14;
extern const std::array<const char*, kFeatures> kFeatureNames;

struct Scorer {
  std::array<double, kFeatures> weights{};  // logistic regression, weights[0] is the bias
  // Isotonic map from the logistic output to a calibrated probability:
  // piecewise linear through (x[i], y[i]), x ascending, y non-decreasing.
  std::vector<double> iso_x, iso_y;
  // The same for the first candidate of a proposal (its hit rate at a given
  // score differs from the others': it has no better rival).
  std::vector<double> iso1_x, iso1_y;
  bool fitted = false;

  double Raw(const std::array<double, kFeatures>& x) const;
  double Calibrate(double raw, bool first = false) const;
  nlohmann::json ToJson() const;
  static Result<Scorer> FromJson(const nlohmann::json& j);
};

struct ModelParams {
  // Smoothing strength per context level (count_table.h): a level's
  // estimate is (hits + m * parent) / (avail + m).
  std::array<double, kLevels> m_corpus = {2, 4, 4, 4, 4};
  std::array<double, kLevels> m_session = {2, 2, 2, 2, 2};
  double root = 1e-4;          // estimate of a template never seen anywhere
  double session_root = 1e-3;
  std::array<size_t, kLevels> candidates_per_level = {12, 10, 10, 8, 8};
  PruneOptions prune;

  nlohmann::json ToJson() const;
  static Result<ModelParams> FromJson(const nlohmann::json& j);
};

class Model {
 public:
  CountTable generic;                       // every training agent pooled
  std::map<std::string, CountTable> agents;  // per agent id
  ModelParams params;
  Scorer known;    // the agent has a section in the model
  Scorer unknown;  // it has not (other agents only: cross-agent)
  nlohmann::json meta = nlohmann::json::object();  // what it was trained on, and the command

  const CountTable* Agent(const std::string& id) const;

  nlohmann::json ToJson() const;
  static Result<Model> FromJson(const nlohmann::json& j);
  static Result<Model> Load(const std::string& path);
  Status Save(const std::string& path) const;

  // The model shipped with specula (speculators/model/builtin.json, compiled
  // into the library, so a fresh build has it without any data).
  static Result<std::shared_ptr<const Model>> Shipped();
};

// The shipped model's JSON text (embedded at build time).
std::string_view ShippedModelText();

}  // namespace specula::speculators
