// Fuzzes the built-in speculator's model file: JSON -> Model (count tables,
// parameters, scorers) must reject or accept without crashing, and an
// accepted model must be usable: a speculator built on it proposes for a
// small history, its confidences in [0,1], and it serialises again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_check.h"
#include "speculators/builtin.h"
#include "speculators/model.h"

using namespace specula::speculators;
using specula::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(input, nullptr, false);
  if (j.is_discarded()) return 0;
  auto m = Model::FromJson(j);
  if (!m.ok()) return 0;
  (void)m->ToJson().dump();
  auto model = std::make_shared<const Model>(std::move(*m));
  BuiltinSpeculator spec(model);
  History h;
  h.agent = model->agents.empty() ? "" : model->agents.begin()->first;
  for (const char* c : {"ls -la", "cat > t.py << 'EOF'\nprint(1)\nEOF", "python t.py"}) {
    auto r = spec.Propose(h, 4);
    Check(r.ok());
    for (const auto& cand : *r) Check(cand.confidence >= 0 && cand.confidence <= 1);
    Step s;
    s.command = c;
    s.stdout_text = "./a/b.py:12:x\n";
    h.steps.push_back(s);
  }
  return 0;
}
