// libFuzzer target: any byte string given to the policy parser must produce a
// Policy or diagnostics, never a crash, hang, leak or escaped exception. A
// parsed policy is also explained, which walks every field.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policies/policy_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  specula::policy::PolicyErrors errors;
  // Shipped names only: `extends` must not make the fuzzer read arbitrary files.
  auto policy = specula::policy::ParsePolicy(text, "fuzz.toml", specula::policy::ShippedResolver(), &errors);
  if (policy.ok()) {
    std::string explained = specula::policy::ExplainPolicy(*policy);
    if (explained.empty()) __builtin_trap();
  } else if (errors.empty()) {
    __builtin_trap();  // a failure must always come with a diagnostic
  }
  for (const auto& d : errors.items()) (void)d.ToString();
  return 0;
}
