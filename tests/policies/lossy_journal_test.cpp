// LossyJournal on real files: each compensation mode, directories, globs,
// symlink refusal, caps, reload after a restart. Paths live in a temporary
// directory on the host, so the journal resolves them from "/" exactly as it
// resolves /proc/sys knobs.
#include "runtime/lossy/lossy_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/policies/test_util.h"

namespace specula::lossy {
namespace {

namespace fs = std::filesystem;
using policy::Compensation;
using policy::PathMode;
using policy::PathRule;
using policy::testing::TempDir;
using Kind = LossyRecord::Kind;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

policy::Policy PolicyWith(std::vector<PathRule> rules) {
  policy::Policy p;
  p.paths = std::move(rules);
  return p;
}

// A host dir (the lossy paths) and a state dir (the branch's), both temporary.
struct Fixture {
  TempDir host, state;
  std::string H(const std::string& rel) const { return host.path() + "/" + rel; }
};

TEST(LossyJournal, RestoreModeFileWriteIsJournaledAndUndone) {
  Fixture f;
  WriteFile(f.H("knob"), "60\n");
  ::chmod(f.H("knob").c_str(), 0644);
  auto j = LossyJournal::Prepare(PolicyWith({{f.H("knob"), PathMode::kLossy, "vm", Compensation::kRestore, ""}}),
                                 f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_EQ(j->binds().size(), 1u);
  EXPECT_EQ(j->binds()[0].host_path, f.H("knob"));
  EXPECT_EQ(j->binds()[0].sandbox_path, f.H("knob"));
  EXPECT_FALSE(j->binds()[0].read_only);

  WriteFile(f.H("knob"), "10\n");  // what the branch does through the bind
  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok()) << effects.error().message();
  ASSERT_EQ(effects->size(), 1u);
  const LossyRecord& w = (*effects)[0];
  EXPECT_EQ(w.kind, Kind::kWrite);
  EXPECT_EQ(w.path, f.H("knob"));
  EXPECT_EQ(w.tag, "vm");
  EXPECT_EQ(w.detail, "60 -> 10");
  EXPECT_GT(w.time_unix_ms, 0);
  ASSERT_FALSE(w.pre_image.empty());
  EXPECT_EQ(ReadFile(f.state.path() + "/" + w.pre_image), "60\n");
  EXPECT_EQ(w.ToJson()["compensation"], "restore");
  {
    std::ifstream in(f.state.path() + "/lossy/manifest.json");
    EXPECT_EQ(nlohmann::json::parse(in)["entries"][0]["files"][0]["kernel_fs"], false);  // a real file: fsync'd
  }

  // A second collect reports nothing new.
  auto again = j->CollectEffects();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());

  ::chmod(f.H("knob").c_str(), 0600);
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  ASSERT_EQ(restored->size(), 1u);
  EXPECT_EQ((*restored)[0].kind, Kind::kRestore);
  EXPECT_EQ((*restored)[0].detail, "mode 600 -> 644, 10 -> 60");
  EXPECT_EQ(ReadFile(f.H("knob")), "60\n");
  struct stat st {};
  ASSERT_EQ(::stat(f.H("knob").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);

  // Idempotent: nothing left to do.
  auto twice = j->Restore();
  ASSERT_TRUE(twice.ok());
  EXPECT_TRUE(twice->empty());

  // The journal file holds every record, one JSON object a line.
  std::ifstream lines(f.state.path() + "/lossy/journal.jsonl");
  std::string line;
  std::vector<std::string> kinds;
  while (std::getline(lines, line)) kinds.push_back(nlohmann::json::parse(line)["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"write", "restore"}));
}

TEST(LossyJournal, NoneModeLastWriteWins) {
  Fixture f;
  WriteFile(f.H("knob"), "1\n");
  auto j = LossyJournal::Prepare(PolicyWith({{f.H("knob"), PathMode::kLossy, "perf", Compensation::kNone, ""}}),
                                 f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  WriteFile(f.H("knob"), "2\n");
  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok());
  ASSERT_EQ(effects->size(), 1u);
  EXPECT_EQ((*effects)[0].kind, Kind::kWrite);
  EXPECT_EQ((*effects)[0].compensation, Compensation::kNone);
  EXPECT_EQ((*effects)[0].pre_image, "");  // nothing kept: it will not be restored
  EXPECT_EQ((*effects)[0].detail, "1 -> 2");
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok());
  EXPECT_TRUE(restored->empty());
  EXPECT_EQ(ReadFile(f.H("knob")), "2\n");
}

TEST(LossyJournal, DirectoryCreateModifyDeleteAndRestore) {
  Fixture f;
  fs::create_directories(f.H("cache/sub"));
  WriteFile(f.H("cache/a"), "alpha");
  WriteFile(f.H("cache/sub/b"), "beta");
  WriteFile(f.H("cache/sub/c"), "gamma");
  auto j = LossyJournal::Prepare(
      PolicyWith({{f.H("cache"), PathMode::kLossy, "cache", Compensation::kRestore, ""}}), f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();

  WriteFile(f.H("cache/a"), "ALPHA!");
  fs::remove(f.H("cache/sub/b"));
  fs::remove_all(f.H("cache/sub"));  // also deletes c and the directory
  fs::create_directories(f.H("cache/new/deep"));
  WriteFile(f.H("cache/new/deep/x"), "x");

  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok()) << effects.error().message();
  std::map<std::string, Kind> by_path;
  for (const auto& r : *effects) by_path[r.path] = r.kind;
  EXPECT_EQ(by_path[f.H("cache/a")], Kind::kWrite);
  EXPECT_EQ(by_path[f.H("cache/sub")], Kind::kDelete);
  EXPECT_EQ(by_path[f.H("cache/sub/b")], Kind::kDelete);
  EXPECT_EQ(by_path[f.H("cache/sub/c")], Kind::kDelete);
  EXPECT_EQ(by_path[f.H("cache/new")], Kind::kCreate);
  EXPECT_EQ(by_path[f.H("cache/new/deep/x")], Kind::kCreate);
  // The directory itself changed mtime only: not a write.
  EXPECT_EQ(by_path.count(f.H("cache")), 0u);

  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(ReadFile(f.H("cache/a")), "alpha");
  EXPECT_EQ(ReadFile(f.H("cache/sub/b")), "beta");
  EXPECT_EQ(ReadFile(f.H("cache/sub/c")), "gamma");
  EXPECT_FALSE(fs::exists(f.H("cache/new")));
  for (const auto& r : *restored) EXPECT_EQ(r.kind, Kind::kRestore) << r.path << ": " << r.detail;
}

// Branches of one head run at once on the same lossy paths. When one is
// promoted, its siblings' discards must not undo its writes: each put back
// its own pre-image, which predates the promoted branch's write (found by
// the soak test: every hit's lossy write was lost to its siblings).
TEST(LossyJournal, ASiblingsDiscardKeepsWhatThePromotedBranchWrote) {
  Fixture f;
  fs::create_directories(f.H("cache"));
  WriteFile(f.H("knob"), "60\n");
  WriteFile(f.H("cache/old"), "old");
  auto rules = PolicyWith({{f.H("knob"), PathMode::kLossy, "vm", Compensation::kRestore, ""},
                           {f.H("cache"), PathMode::kLossy, "cache", Compensation::kRestore, ""}});
  TempDir state_b;
  auto winner = LossyJournal::Prepare(rules, f.state.path());
  auto sibling = LossyJournal::Prepare(rules, state_b.path());
  ASSERT_TRUE(winner.ok() && sibling.ok());

  // The winner writes the knob, makes a file, deletes one, and ends; the
  // sibling, still running, writes the knob again and makes a file of its
  // own before it is killed. (While both run, neither can tell whose write
  // a change is: the journal compares states, lossy_journal.h.)
  WriteFile(f.H("knob"), "10\n");
  WriteFile(f.H("cache/ours"), "winner");
  fs::remove(f.H("cache/old"));
  ASSERT_TRUE(winner->CollectEffects().ok());
  WriteFile(f.H("knob"), "20\n");
  WriteFile(f.H("cache/theirs"), "sibling");
  ASSERT_TRUE(sibling->CollectEffects().ok());

  LossyJournal::CommittedState committed = winner->Committed();
  auto restored = sibling->Restore(&committed);
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(ReadFile(f.H("knob")), "10\n") << "the promoted branch's value, not the sibling's pre-image or last write";
  EXPECT_EQ(ReadFile(f.H("cache/ours")), "winner");
  EXPECT_FALSE(fs::exists(f.H("cache/old"))) << "the promoted branch deleted it";
  EXPECT_FALSE(fs::exists(f.H("cache/theirs"))) << "the sibling's own creation is undone";

  // Without a promoted sibling a discard restores the pre-images as before.
  TempDir state_c;
  auto alone = LossyJournal::Prepare(rules, state_c.path());
  ASSERT_TRUE(alone.ok());
  WriteFile(f.H("knob"), "30\n");
  ASSERT_TRUE(alone->Restore().ok());
  EXPECT_EQ(ReadFile(f.H("knob")), "10\n");
}

// A discard undoes only what its branch changed by the end of its action:
// a later write by someone else (another session whose policy shares the
// lossy path, a branch of another head) is not this branch's to undo (found
// by the soak test: sessions sharing a lossy glob reverted each other's
// committed writes).
TEST(LossyJournal, ADiscardLeavesWritesMadeAfterItsActionByOthers) {
  Fixture f;
  WriteFile(f.H("mine"), "1\n");
  WriteFile(f.H("shared"), "a\n");
  auto rules = PolicyWith({{f.H("*"), PathMode::kLossy, "t", Compensation::kRestore, ""}});
  auto j = LossyJournal::Prepare(rules, f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  WriteFile(f.H("mine"), "2\n");        // the branch's own write
  ASSERT_TRUE(j->CollectEffects().ok());  // its action ends
  WriteFile(f.H("shared"), "b\n");       // another session commits a write
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(ReadFile(f.H("mine")), "1\n");
  EXPECT_EQ(ReadFile(f.H("shared")), "b\n") << "a write made after the branch's action was undone";
}

TEST(LossyJournal, GlobExpandsOnTheHostAndMissingPathsAreSkipped) {
  Fixture f;
  fs::create_directories(f.H("kernel"));
  WriteFile(f.H("kernel/sched_a"), "1");
  WriteFile(f.H("kernel/sched_b"), "2");
  WriteFile(f.H("kernel/other"), "3");
  auto j = LossyJournal::Prepare(
      PolicyWith({{f.H("kernel/sched_*"), PathMode::kLossy, "sched", Compensation::kRestore, ""},
                  {f.H("absent"), PathMode::kLossy, "gone", Compensation::kRestore, ""},
                  {f.H("nomatch/x*"), PathMode::kLossy, "gone", Compensation::kRestore, ""},
                  {f.H("kernel/other"), PathMode::kHidden, "", Compensation::kRestore, ""}}),
      f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_EQ(j->binds().size(), 2u);
  EXPECT_EQ(j->binds()[0].host_path, f.H("kernel/sched_a"));
  EXPECT_EQ(j->binds()[1].host_path, f.H("kernel/sched_b"));
  ASSERT_EQ(j->records().size(), 2u);
  EXPECT_EQ(j->records()[0].kind, Kind::kSkipped);
  EXPECT_EQ(j->records()[0].path, f.H("absent"));
  EXPECT_EQ(j->records()[1].detail, "no match on the host");
  auto json = j->ToJson();
  ASSERT_EQ(json["entries"].size(), 2u);
  EXPECT_EQ(json["entries"][0]["rule"], f.H("kernel/sched_*"));
}

TEST(LossyJournal, SymlinkInLossyPathIsRefused) {
  Fixture f;
  fs::create_directories(f.H("real"));
  WriteFile(f.H("real/knob"), "1");
  fs::create_directory_symlink(f.H("real"), f.H("link"));
  auto j = LossyJournal::Prepare(
      PolicyWith({{f.H("link/knob"), PathMode::kLossy, "t", Compensation::kRestore, ""}}), f.state.path());
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().sys_errno(), ELOOP) << j.error().message();
  // A symlink as the lossy path itself, too.
  TempDir state2;
  fs::create_symlink(f.H("real/knob"), f.H("knoblink"));
  auto k = LossyJournal::Prepare(
      PolicyWith({{f.H("knoblink"), PathMode::kLossy, "t", Compensation::kRestore, ""}}), state2.path());
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().sys_errno(), ELOOP);
}

TEST(LossyJournal, BranchSwappingAFileForASymlinkCannotRedirectRestore) {
  Fixture f;
  fs::create_directories(f.H("dir"));
  WriteFile(f.H("dir/conf"), "safe");
  WriteFile(f.H("victim"), "untouched");
  auto j = LossyJournal::Prepare(
      PolicyWith({{f.H("dir"), PathMode::kLossy, "t", Compensation::kRestore, ""}}), f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  fs::remove(f.H("dir/conf"));
  fs::create_symlink(f.H("victim"), f.H("dir/conf"));
  auto restored = j->Restore();
  EXPECT_FALSE(restored.ok());  // it cannot put "safe" back without following the link
  EXPECT_EQ(ReadFile(f.H("victim")), "untouched");
  bool failed_recorded = false;
  for (const auto& r : j->records()) failed_recorded |= r.kind == Kind::kRestoreFailed && r.path == f.H("dir/conf");
  EXPECT_TRUE(failed_recorded);
}

TEST(LossyJournal, PreImageCapsAreEnforced) {
  Fixture f;
  WriteFile(f.H("big"), std::string(4096, 'x'));
  LossyOptions opts;
  opts.max_file_bytes = 1024;
  auto j = LossyJournal::Prepare(PolicyWith({{f.H("big"), PathMode::kLossy, "t", Compensation::kRestore, ""}}),
                                 f.state.path(), opts);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), Code::kResourceExhausted);
  EXPECT_FALSE(fs::exists(f.state.path() + "/lossy"));  // no half journal left behind
  // With `none` nothing needs keeping: a big file is compared by size and mtime.
  TempDir state2;
  auto k = LossyJournal::Prepare(PolicyWith({{f.H("big"), PathMode::kLossy, "t", Compensation::kNone, ""}}),
                                 state2.path(), opts);
  ASSERT_TRUE(k.ok()) << k.error().message();
  WriteFile(f.H("big"), std::string(5000, 'y'));
  auto effects = k->CollectEffects();
  ASSERT_TRUE(effects.ok());
  ASSERT_EQ(effects->size(), 1u);
  EXPECT_EQ((*effects)[0].detail, "content changed (4096 -> 5000 bytes)");
}

TEST(LossyJournal, RefusesToOverwriteAnEarlierJournal) {
  Fixture f;
  WriteFile(f.H("knob"), "1");
  auto rules = PolicyWith({{f.H("knob"), PathMode::kLossy, "t", Compensation::kRestore, ""}});
  auto first = LossyJournal::Prepare(rules, f.state.path());
  ASSERT_TRUE(first.ok());
  auto second = LossyJournal::Prepare(rules, f.state.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().sys_errno(), EEXIST);
}

TEST(LossyJournal, LoadAfterRestartCanStillRestore) {
  Fixture f;
  WriteFile(f.H("knob"), "old");
  {
    auto j = LossyJournal::Prepare(
        PolicyWith({{f.H("knob"), PathMode::kLossy, "t", Compensation::kRestore, ""}}), f.state.path());
    ASSERT_TRUE(j.ok());
  }  // the daemon "crashes" here
  WriteFile(f.H("knob"), "new");
  auto j = LossyJournal::Load(f.state.path());
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_EQ(j->binds().size(), 1u);
  auto restored = j->Restore();
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(ReadFile(f.H("knob")), "old");
}

TEST(LossyJournal, HostRootPrefixesBinds) {
  Fixture f;
  fs::create_directories(f.H("etc"));
  WriteFile(f.H("etc/tuning.conf"), "a=1\n");
  LossyOptions opts;
  opts.host_root = f.host.path();
  auto j = LossyJournal::Prepare(
      PolicyWith({{"/etc/tuning.conf", PathMode::kLossy, "t", Compensation::kRestore, ""}}), f.state.path(), opts);
  ASSERT_TRUE(j.ok()) << j.error().message();
  ASSERT_EQ(j->binds().size(), 1u);
  EXPECT_EQ(j->binds()[0].host_path, f.H("etc/tuning.conf"));
  EXPECT_EQ(j->binds()[0].sandbox_path, "/etc/tuning.conf");
  WriteFile(f.H("etc/tuning.conf"), "a=2\n");
  auto effects = j->CollectEffects();
  ASSERT_TRUE(effects.ok());
  ASSERT_EQ(effects->size(), 1u);
  EXPECT_EQ((*effects)[0].path, "/etc/tuning.conf");
  ASSERT_TRUE(j->Restore().ok());
  EXPECT_EQ(ReadFile(f.H("etc/tuning.conf")), "a=1\n");
}

}  // namespace
}  // namespace specula::lossy
