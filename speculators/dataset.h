// Splitting recorded sessions for training and evaluation, by task, never
// by step: a task's runs are all on one side. The task of a trajectory is
// its name up to the first underscore that is not part of "__" (SWE-bench
// names: "django__django-11099_deepseek_chat_..." -> "django__django-11099");
// names without one are their own task. Buckets by FNV-1a of the task:
//   test  h % 10 in {0, 1}   (held out: never tuned on)
//   dev   h % 10 in {2, 3}   (tuning)
//   train otherwise
// Replay (a task seen before): of every task with several runs in a
// source, the run with the smallest FNV-1a of its name is "replay" (held
// out), the others are "replay-rest".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace specula::speculators {

std::string TaskOfName(std::string_view name);

enum class Bucket { kTrain, kDev, kTest };
Bucket BucketOfTask(std::string_view task);
const char* BucketName(Bucket b);

// Subsets: all, train, dev, test, train+dev, replay, replay-rest,
// replay-test (replay runs of test-bucket tasks), replay-dev (of train and
// dev tasks), foldF and not-foldF (F in 0..4: five task folds by FNV-1a % 5,
// for cross-validation). Returns, for each of `names` (one source), whether it is in
// `subset`; false for every name when the subset is unknown (`ok` false).
std::vector<bool> SelectSubset(const std::vector<std::string>& names, std::string_view subset, bool* ok = nullptr);

}  // namespace specula::speculators
