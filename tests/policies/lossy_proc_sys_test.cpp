// LossyJournal on real, harmless /proc/sys knobs (vm.stat_interval and the
// kernel.printk_ratelimit* pair): capture, detect the write, write the old
// value back. A guard restores the knobs on its own even if the test fails.
// RUN_SERIAL: the knobs are host-wide.
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "runtime/lossy/lossy_journal.h"
#include "tests/policies/test_util.h"

namespace specula::lossy {
namespace {

using policy::Compensation;
using policy::PathMode;
using Kind = LossyRecord::Kind;

const char* kStatInterval = "/proc/sys/vm/stat_interval";
const char* kRatelimit = "/proc/sys/kernel/printk_ratelimit";
const char* kRatelimitBurst = "/proc/sys/kernel/printk_ratelimit_burst";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
bool Write(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

// Puts every knob back to its value at construction, whatever happens.
class KnobGuard {
 public:
  explicit KnobGuard(std::vector<std::string> knobs) {
    for (auto& k : knobs) saved_[k] = Read(k);
  }
  ~KnobGuard() {
    for (const auto& [k, v] : saved_) {
      if (Read(k) != v) Write(k, v);
    }
  }
  const std::string& saved(const std::string& k) { return saved_[k]; }

 private:
  std::map<std::string, std::string> saved_;
};

std::string Trim(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST(LossyProcSys, KnobWriteIsJournaledAndRestored) {
  ASSERT_EQ(::geteuid(), 0u) << "integration test: run as root (writes /proc/sys)";
  KnobGuard guard({kStatInterval, kRatelimit, kRatelimitBurst});
  const std::string old_interval = Trim(guard.saved(kStatInterval));
  const std::string old_burst = Trim(guard.saved(kRatelimitBurst));
  const std::string new_interval = old_interval == "3" ? "4" : "3";
  const std::string new_burst = std::to_string(std::stoi(old_burst) + 7);

  policy::Policy p;
  p.paths = {{kStatInterval, PathMode::kLossy, "vm", Compensation::kRestore, ""},
             {"/proc/sys/kernel/printk_ratelimit*", PathMode::kLossy, "printk", Compensation::kRestore, ""}};
  policy::testing::TempDir state;
  auto j = LossyJournal::Prepare(p, state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_EQ(j->binds().size(), 3u);
  EXPECT_EQ(j->binds()[0].host_path, kStatInterval);
  EXPECT_EQ(j->binds()[1].host_path, kRatelimit);
  EXPECT_EQ(j->binds()[2].host_path, kRatelimitBurst);

  // Knob pre-images are kept but not fsync'd: a knob's value does not
  // survive a reboot either. The manifest says which files are kernel state.
  {
    std::ifstream in(state.path() + "/lossy/manifest.json");
    auto manifest = nlohmann::json::parse(in);
    ASSERT_EQ(manifest["entries"].size(), 3u);
    EXPECT_EQ(manifest["entries"][0]["files"][0]["kernel_fs"], true);
    EXPECT_EQ(manifest["entries"][0]["files"][0]["pre_image"], "lossy/pre-0-0");
  }
  EXPECT_EQ(Read(state.path() + "/lossy/pre-0-0"), guard.saved(kStatInterval));

  // The branch tunes two knobs (through its bind; the same kernel object).
  ASSERT_TRUE(Write(kStatInterval, new_interval + "\n"));
  ASSERT_TRUE(Write(kRatelimitBurst, new_burst + "\n"));
  ASSERT_EQ(Trim(Read(kStatInterval)), new_interval);

  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok()) << effects.error().message();
  ASSERT_EQ(effects->size(), 2u);
  EXPECT_EQ((*effects)[0].kind, Kind::kWrite);
  EXPECT_EQ((*effects)[0].path, kStatInterval);
  EXPECT_EQ((*effects)[0].tag, "vm");
  EXPECT_EQ((*effects)[0].detail, old_interval + " -> " + new_interval);
  EXPECT_EQ((*effects)[1].path, kRatelimitBurst);
  EXPECT_EQ((*effects)[1].rule, "/proc/sys/kernel/printk_ratelimit*");
  EXPECT_EQ((*effects)[1].tag, "printk");
  EXPECT_EQ((*effects)[1].detail, old_burst + " -> " + new_burst);

  // Discard: the old values go back into the kernel.
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  ASSERT_EQ(restored->size(), 2u);
  EXPECT_EQ((*restored)[0].kind, Kind::kRestore);
  EXPECT_EQ((*restored)[0].detail, new_interval + " -> " + old_interval);
  EXPECT_EQ(Trim(Read(kStatInterval)), old_interval);
  EXPECT_EQ(Trim(Read(kRatelimitBurst)), old_burst);
}

TEST(LossyProcSys, NoneModeLeavesTheKnob) {
  ASSERT_EQ(::geteuid(), 0u) << "integration test: run as root (writes /proc/sys)";
  KnobGuard guard({kStatInterval});
  const std::string old_interval = Trim(guard.saved(kStatInterval));
  const std::string new_interval = old_interval == "3" ? "4" : "3";
  policy::Policy p;
  p.paths = {{kStatInterval, PathMode::kLossy, "vm", Compensation::kNone, ""}};
  policy::testing::TempDir state;
  auto j = LossyJournal::Prepare(p, state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_TRUE(Write(kStatInterval, new_interval + "\n"));
  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok());
  ASSERT_EQ(effects->size(), 1u);
  EXPECT_EQ((*effects)[0].compensation, Compensation::kNone);
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok());
  EXPECT_TRUE(restored->empty());
  EXPECT_EQ(Trim(Read(kStatInterval)), new_interval);  // last write wins; the guard puts it back
}

TEST(LossyProcSys, WriteOnlyKnobIsCapturedAsUnreadable) {
  ASSERT_EQ(::geteuid(), 0u) << "integration test: run as root";
  // vm.drop_caches is mode 0200: the journal cannot read it, so it cannot
  // compare or restore it; Prepare still succeeds and binds it.
  policy::Policy p;
  p.paths = {{"/proc/sys/vm/drop_caches", PathMode::kLossy, "vm", Compensation::kRestore, ""}};
  policy::testing::TempDir state;
  auto j = LossyJournal::Prepare(p, state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_EQ(j->binds().size(), 1u);
  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok());
  EXPECT_TRUE(effects->empty());
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok());
  EXPECT_TRUE(restored->empty());
}

}  // namespace
}  // namespace specula::lossy
