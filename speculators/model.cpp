#include "speculators/model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>

namespace specula::speculators {

using Json = nlohmann::json;

const std::array<const char*, kFeatures> kFeatureNames = {
    "bias",         "logit_generic", "logit_agent",  "logit_session", "logit_runbook", "has_runbook",
    "slotted",      "log_step",      "templates",    "seen_in_session", "is_last",     "logit_adapted",
    "logit_agreement", "logit_runbook_ahead"};

namespace {

constexpr const char* kFormat = "specula-builtin-model";
constexpr int kVersion = 1;

template <size_t N, typename T>
Json ArrayJson(const std::array<T, N>& a) {
  Json j = Json::array();
  for (const auto& x : a) j.push_back(x);
  return j;
}

template <size_t N, typename T>
Status ReadArray(const Json& j, const char* key, std::array<T, N>& out) {
  if (!j.contains(key)) return Status::Ok();
  const Json& v = j[key];
  if (!v.is_array() || v.size() != N) {
    return Error(Code::kInvalidArgument, std::string("model params: ") + key + " must have " + std::to_string(N) + " entries");
  }
  for (size_t i = 0; i < N; ++i) {
    if (!v[i].is_number()) return Error(Code::kInvalidArgument, std::string("model params: ") + key + ": not a number");
    double x = v[i].get<double>();
    if (!std::isfinite(x) || x < 0) return Error(Code::kInvalidArgument, std::string("model params: ") + key + ": bad value");
    out[i] = static_cast<T>(x);
  }
  return Status::Ok();
}

}  // namespace

double Scorer::Raw(const std::array<double, kFeatures>& x) const {
  double z = 0;
  for (size_t i = 0; i < kFeatures; ++i) z += weights[i] * x[i];
  z = std::clamp(z, -30.0, 30.0);
  return 1.0 / (1.0 + std::exp(-z));
}

namespace {
double Interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x <= xs.front()) return ys.front();
  if (x >= xs.back()) return ys.back();
  auto it = std::upper_bound(xs.begin(), xs.end(), x);
  size_t i = static_cast<size_t>(it - xs.begin());  // xs[i-1] <= x < xs[i]
  double x0 = xs[i - 1], x1 = xs[i], y0 = ys[i - 1], y1 = ys[i];
  return x1 > x0 ? y0 + (y1 - y0) * (x - x0) / (x1 - x0) : y0;
}
}  // namespace

double Scorer::Calibrate(double raw, bool first) const {
  if (first && !iso1_x.empty()) return Interpolate(iso1_x, iso1_y, raw);
  if (iso_x.empty()) return raw;
  return Interpolate(iso_x, iso_y, raw);
}

Json Scorer::ToJson() const {
  Json w = Json::object();
  for (size_t i = 0; i < kFeatures; ++i) w[kFeatureNames[i]] = weights[i];
  return {{"fitted", fitted}, {"weights", w}, {"iso_x", iso_x}, {"iso_y", iso_y}, {"iso1_x", iso1_x}, {"iso1_y", iso1_y}};
}

Result<Scorer> Scorer::FromJson(const Json& j) {
  Scorer s;
  try {
    s.fitted = j.value("fitted", false);
    const Json& w = j.at("weights");
    for (size_t i = 0; i < kFeatures; ++i) {
      double x = w.value(kFeatureNames[i], 0.0);
      if (!std::isfinite(x)) return Error(Code::kInvalidArgument, "scorer: weight is not finite");
      s.weights[i] = x;
    }
    s.iso_x = j.value("iso_x", std::vector<double>{});
    s.iso_y = j.value("iso_y", std::vector<double>{});
    s.iso1_x = j.value("iso1_x", std::vector<double>{});
    s.iso1_y = j.value("iso1_y", std::vector<double>{});
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("scorer: ") + e.what());
  }
  for (const auto& [xs, ys] : {std::pair{&s.iso_x, &s.iso_y}, std::pair{&s.iso1_x, &s.iso1_y}}) {
    if (xs->size() != ys->size()) return Error(Code::kInvalidArgument, "scorer: isotonic x and y differ in length");
    for (size_t i = 0; i < xs->size(); ++i) {
      if (!std::isfinite((*xs)[i]) || !std::isfinite((*ys)[i]) || (*ys)[i] < 0 || (*ys)[i] > 1 ||
          (i > 0 && ((*xs)[i] < (*xs)[i - 1] || (*ys)[i] < (*ys)[i - 1]))) {
        return Error(Code::kInvalidArgument, "scorer: isotonic map must be ascending in [0,1]");
      }
    }
  }
  return s;
}

Json ModelParams::ToJson() const {
  Json top = Json::array();
  for (auto t : prune.top) top.push_back(t);
  return {{"m_corpus", ArrayJson(m_corpus)},
          {"m_session", ArrayJson(m_session)},
          {"root", root},
          {"session_root", session_root},
          {"candidates_per_level", ArrayJson(candidates_per_level)},
          {"prune",
           {{"min_hits", prune.min_hits}, {"min_context", prune.min_context}, {"min_tasks", prune.min_tasks}, {"top", top}}}};
}

Result<ModelParams> ModelParams::FromJson(const Json& j) {
  ModelParams p;
  if (!j.is_object()) return Error(Code::kInvalidArgument, "model params: not an object");
  SPECULA_TRY(ReadArray(j, "m_corpus", p.m_corpus));
  SPECULA_TRY(ReadArray(j, "m_session", p.m_session));
  SPECULA_TRY(ReadArray(j, "candidates_per_level", p.candidates_per_level));
  try {
    p.root = j.value("root", p.root);
    p.session_root = j.value("session_root", p.session_root);
    if (j.contains("prune")) {
      const Json& pr = j["prune"];
      p.prune.min_hits = pr.value("min_hits", p.prune.min_hits);
      p.prune.min_context = pr.value("min_context", p.prune.min_context);
      p.prune.min_tasks = pr.value("min_tasks", p.prune.min_tasks);
      SPECULA_TRY(ReadArray(pr, "top", p.prune.top));
    }
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("model params: ") + e.what());
  }
  if (!(p.root > 0 && p.root < 1) || !(p.session_root > 0 && p.session_root < 1)) {
    return Error(Code::kInvalidArgument, "model params: root estimates must be in (0,1)");
  }
  for (auto c : p.candidates_per_level) {
    if (c > 256) return Error(Code::kInvalidArgument, "model params: candidates_per_level too large");
  }
  return p;
}

const CountTable* Model::Agent(const std::string& id) const {
  if (id.empty()) return nullptr;
  auto it = agents.find(id);
  return it == agents.end() ? nullptr : &it->second;
}

Json Model::ToJson() const {
  Json a = Json::object();
  for (const auto& [name, t] : agents) a[name] = t.ToJson();
  return {{"format", kFormat},
          {"version", kVersion},
          {"meta", meta},
          {"params", params.ToJson()},
          {"scorers", {{"known", known.ToJson()}, {"unknown", unknown.ToJson()}}},
          {"generic", generic.ToJson()},
          {"agents", std::move(a)}};
}

Result<Model> Model::FromJson(const Json& j) {
  if (!j.is_object()) return Error(Code::kInvalidArgument, "model: not a JSON object");
  // Typed before it is read: json::value() throws for a non-string.
  if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kFormat) {
    return Error(Code::kInvalidArgument, "model: format is not " + std::string(kFormat));
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != kVersion) {
    return Error(Code::kInvalidArgument, "model: unsupported version");
  }
  Model m;
  try {
    if (j.contains("meta")) m.meta = j["meta"];
    if (j.contains("params")) {
      SPECULA_ASSIGN_OR_RETURN(m.params, ModelParams::FromJson(j["params"]));
    }
    if (j.contains("scorers")) {
      const Json& s = j["scorers"];
      if (!s.is_object()) return Error(Code::kInvalidArgument, "model: scorers is not an object");
      if (s.contains("known")) {
        SPECULA_ASSIGN_OR_RETURN(m.known, Scorer::FromJson(s["known"]));
      }
      if (s.contains("unknown")) {
        SPECULA_ASSIGN_OR_RETURN(m.unknown, Scorer::FromJson(s["unknown"]));
      }
    }
    SPECULA_ASSIGN_OR_RETURN(m.generic, CountTable::FromJson(j.at("generic")));
    if (j.contains("agents")) {
      if (!j["agents"].is_object()) return Error(Code::kInvalidArgument, "model: agents is not an object");
      for (const auto& [name, t] : j["agents"].items()) {
        auto table = CountTable::FromJson(t);
        if (!table.ok()) return std::move(table).error().Context("model: agent " + name);
        m.agents[name] = std::move(*table);
      }
    }
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("model: ") + e.what());
  }
  return m;
}

Result<Model> Model::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::FromErrno("open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Error(Code::kInvalidArgument, path + ": not JSON");
  auto m = FromJson(j);
  if (!m.ok()) return std::move(m).error().Context(path);
  return m;
}

Status Model::Save(const std::string& path) const {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return Error::FromErrno("create " + tmp);
    out << ToJson().dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    if (!out) return Error::FromErrno("write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Error::FromErrno("rename " + tmp);
  return Status::Ok();
}

Result<std::shared_ptr<const Model>> Model::Shipped() {
  static std::once_flag once;
  static std::shared_ptr<const Model> model;
  static std::optional<Error> error;
  std::call_once(once, [] {
    Json j = Json::parse(ShippedModelText(), nullptr, false);
    if (j.is_discarded()) {
      error = Error(Code::kDataLoss, "shipped model: not JSON");
      return;
    }
    auto m = FromJson(j);
    if (!m.ok()) {
      error = std::move(m).error().Context("shipped model");
      return;
    }
    model = std::make_shared<const Model>(std::move(*m));
  });
  if (error) return *error;
  return model;
}

}  // namespace specula::speculators
