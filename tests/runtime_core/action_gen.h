// Random shell-action sequences for the differential tests: file operations
// over a small tree, shell-state changes, background processes, failing
// commands. Deterministic for a seed.
#pragma once

#include <random>
#include <string>
#include <vector>

namespace specula::core::testing {

class ActionGenerator {
 public:
  ActionGenerator(uint32_t seed, std::string tree) : rng_(seed), tree_(std::move(tree)) {}

  // The first action of every sequence: the initial small tree.
  std::string Setup() const;
  std::string Next();

 private:
  std::string Pick(const std::vector<std::string>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)];
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string File();
  std::string Dir();
  std::string Word();

  std::mt19937 rng_;
  std::string tree_;
  int bg_started_ = 0;
};

}  // namespace specula::core::testing
