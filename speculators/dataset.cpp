#include "speculators/dataset.h"

#include <map>

#include "speculators/history.h"

namespace specula::speculators {

std::string TaskOfName(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '_') continue;
    bool before = i > 0 && name[i - 1] == '_';
    bool after = i + 1 < name.size() && name[i + 1] == '_';
    if (!before && !after && i > 0) return std::string(name.substr(0, i));
  }
  return std::string(name);
}

Bucket BucketOfTask(std::string_view task) {
  uint64_t h = Fnv1a64(task) % 10;
  if (h <= 1) return Bucket::kTest;
  if (h <= 3) return Bucket::kDev;
  return Bucket::kTrain;
}

const char* BucketName(Bucket b) {
  switch (b) {
    case Bucket::kTrain: return "train";
    case Bucket::kDev: return "dev";
    case Bucket::kTest: return "test";
  }
  return "?";
}

std::vector<bool> SelectSubset(const std::vector<std::string>& names, std::string_view subset, bool* ok) {
  std::vector<bool> out(names.size(), false);
  if (ok) *ok = true;
  // Replay runs: per task with >= 2 runs, the run with the smallest hash.
  std::map<std::string, std::vector<size_t>> runs;
  for (size_t i = 0; i < names.size(); ++i) runs[TaskOfName(names[i])].push_back(i);
  std::vector<bool> replay(names.size(), false);
  for (const auto& [task, idx] : runs) {
    if (idx.size() < 2) continue;
    size_t best = idx[0];
    for (size_t i : idx) {
      if (Fnv1a64(names[i]) < Fnv1a64(names[best])) best = i;
    }
    replay[best] = true;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    Bucket b = BucketOfTask(TaskOfName(names[i]));
    bool in;
    if (subset == "all") in = true;
    else if (subset == "train") in = b == Bucket::kTrain;
    else if (subset == "dev") in = b == Bucket::kDev;
    else if (subset == "test") in = b == Bucket::kTest;
    else if (subset == "train+dev") in = b != Bucket::kTest;
    else if (subset == "replay") in = replay[i];
    else if (subset == "replay-rest") in = !replay[i];
    else if (subset == "replay-test") in = replay[i] && b == Bucket::kTest;
    else if (subset == "replay-dev") in = replay[i] && b != Bucket::kTest;
    else if (subset.size() == 5 && subset.substr(0, 4) == "fold" && subset[4] >= '0' && subset[4] <= '4') {
      in = Fnv1a64(TaskOfName(names[i])) % 5 == static_cast<uint64_t>(subset[4] - '0');
    } else if (subset.size() == 9 && subset.substr(0, 8) == "not-fold" && subset[8] >= '0' && subset[8] <= '4') {
      in = Fnv1a64(TaskOfName(names[i])) % 5 != static_cast<uint64_t>(subset[8] - '0');
    } else {
      if (ok) *ok = false;
      return std::vector<bool>(names.size(), false);
    }
    out[i] = in;
  }
  return out;
}

}  // namespace specula::speculators
