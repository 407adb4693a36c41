// Internals of the policy parser shared by its .cpp files (not installed, not
// for other folders): where each setting came from, the per-file TOML reader
// and the checks that need the whole merged policy.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "policies/policy.h"
#include "policies/policy_parser.h"

namespace specula::policy::internal {

// Where a setting was made: enough to point an operator at it.
struct Origin {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string key;  // "speculation.max_branches", "filesystem.lossy[2]"
  std::string Where() const;  // "file:line:column"
};

// Origins of everything set so far, across the extends chain (a child's
// setting replaces its parent's origin along with its value).
struct Provenance {
  std::map<std::string, Origin> keys;      // scalar key path -> origin
  std::map<std::string, Origin> paths;     // filesystem rule path -> origin
  std::map<std::string, Origin> syscalls;  // syscall name -> origin
};

// Applies one parsed TOML document on top of `policy` (which holds the
// merged parents, or the struct defaults), reporting problems to `errors`.
void ApplyDocument(const toml::table& root, const std::string& file, Policy& policy,
                   Provenance& prov, PolicyErrors& errors);

// Checks that need the merged result (contradictions across sections).
void ValidateMerged(const Policy& policy, const Provenance& prov, PolicyErrors& errors);

// Adds a diagnostic at `origin` (or without a place if origin is null).
void AddAt(PolicyErrors& errors, const Origin* origin, std::string key, std::string message);

}  // namespace specula::policy::internal
