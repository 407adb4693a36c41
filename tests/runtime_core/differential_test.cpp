// Differential tests (the contract's "lossless" clause): random action
// sequences run (a) sequentially in one sandbox and (b) through
// speculate/commit with random correct, wrong and missing predictions and
// k = 1..4 branches. After every commit the file tree (content, type, mode,
// owner, symlink targets, hard-link structure), the result (stdout, stderr,
// exit code) and the shell state must be identical. Surviving processes are
// compared through the generated `ps` actions, whose output is compared like
// any other result. SPECULA_DIFF_SEEDS sets the number of sequences.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "action_gen.h"
#include "core_test_util.h"
#include "tree_snapshot.h"

namespace specula::core::testing {
namespace {

using namespace std::chrono_literals;

class DifferentialTest : public CoreFixture {
 protected:
  // The sequential sandbox's tree through its merged mount, owners as on
  // disk: the layers of that mount are idmapped for the sandbox's user
  // namespace, so from the host every owner shows shifted by the id range's
  // base; shift it back (the session's layers are read on disk).
  static std::string UnshiftOwners(const std::string& snap, const sandbox::IdRange& r) {
    static const std::regex owner("owner=([0-9]+):([0-9]+)");
    std::string out;
    auto back = [&r](const std::string& v) {
      uint64_t id = std::stoull(v);
      if (id >= r.host_base && id < static_cast<uint64_t>(r.host_base) + r.count) id -= r.host_base;
      return std::to_string(id);
    };
    std::sregex_iterator it(snap.begin(), snap.end(), owner), end;
    size_t pos = 0;
    for (; it != end; ++it) {
      out += snap.substr(pos, static_cast<size_t>(it->position()) - pos);
      out += "owner=" + back((*it)[1].str()) + ":" + back((*it)[2].str());
      pos = static_cast<size_t>(it->position() + it->length());
    }
    return out + snap.substr(pos);
  }
  // What the head checkpoint shows at `tree`: a read-only overlay of its
  // layers over the base (or the base itself for the root checkpoint).
  std::string HeadSnapshot(const std::string& session, const std::string& tree) {
    auto info = mgr_->ShowSession(session);
    EXPECT_TRUE(info.ok());
    auto dirs = mgr_->CheckpointLayerDirs(info->record.head);
    EXPECT_TRUE(dirs.ok());
    if (dirs->empty()) return NormaliseLinks(Snapshot(tree));
    std::string mnt = dir_ + "/view";
    EXPECT_TRUE(MakeDirs(mnt).ok());
    std::string lower;
    for (auto it = dirs->rbegin(); it != dirs->rend(); ++it) lower += *it + ":";
    lower += "/";
    std::string opts = "lowerdir=" + lower;
    if (::mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, opts.c_str()) != 0) {
      ADD_FAILURE() << "mount view: " << strerror(errno);
      return "";
    }
    std::string snap = NormaliseLinks(Snapshot(mnt + tree));
    ::umount2(mnt.c_str(), MNT_DETACH);
    return snap;
  }

  // `pool`: the manager's warm pool per session (0: none).
  void RunSequences(uint32_t pool);
};

TEST_F(DifferentialTest, SpeculationIsLossless) { RunSequences(0); }

// Branches and missed commits on sandboxes prepared ahead (issue 15): a
// pooled sandbox must be indistinguishable from a fresh one.
TEST_F(DifferentialTest, SpeculationIsLosslessWithTheWarmPool) {
  OpenManager(16, /*pool_per_session=*/2);
  RunSequences(2);
  auto st = mgr_->pool_stats();
  std::printf("differential (warm pool): %llu takes from the pool, %llu without\n",
              static_cast<unsigned long long>(st.hits), static_cast<unsigned long long>(st.misses));
  EXPECT_GT(st.hits, 0u) << "the pool was never used: the test compared nothing pooled";
}

void DifferentialTest::RunSequences(uint32_t pool) {
  int seeds = 4;
  if (const char* v = std::getenv("SPECULA_DIFF_SEEDS")) seeds = std::max(1, std::atoi(v));
  int steps = 12;
  if (const char* v = std::getenv("SPECULA_DIFF_STEPS")) steps = std::max(1, std::atoi(v));
  int sequences = 0, commits = 0, hits = 0, diffs = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::string tree = "/var/tmp/specula-diff-" + std::to_string(::getpid()) + "-" + std::to_string(seed);
    ActionGenerator gen(static_cast<uint32_t>(seed), tree);
    ActionGenerator wrong_gen(static_cast<uint32_t>(seed) * 7919u, tree);
    std::mt19937 rng(static_cast<uint32_t>(seed) * 31u);

    // (a) the sequential reference: one sandbox, every action in turn. Its
    // upper is a volume of the same store, as a commit without speculation
    // gets: what the filesystem itself shows (a directory's st_size is 4096
    // on ext4, the length of its names on btrfs; the root's mode) must not
    // count as a difference.
    store::VolumeRequest vr;
    vr.root_like = "/";
    auto vol = mgr_->store().CreateBranchVolume("seq" + std::to_string(seed), vr);
    ASSERT_TRUE(vol.ok()) << vol.error().ToString();
    std::string seq_dir = vol->dir;
    ASSERT_TRUE(MakeDirs(seq_dir + "/run").ok());
    sandbox::SandboxSpec spec;
    spec.base = "/";
    spec.upper_dir = vol->upper;
    spec.work_dir = vol->work;
    spec.run_dir = seq_dir + "/run";
    spec.name = "diffseq-" + std::to_string(::getpid()) + "-" + std::to_string(seed);
    spec.policy = policy::DefaultPolicy();
    auto seq = sandbox::Sandbox::Create(spec);
    ASSERT_TRUE(seq.ok()) << seq.error().ToString();

    // (b) the speculative run.
    policy::Policy p = policy::DefaultPolicy();
    p.speculation.max_branches_per_session = 4;
    p.speculation.max_concurrent_branches = 4;
    std::string s = NewSession(p);
    ASSERT_FALSE(s.empty());

    std::vector<std::string> actions{gen.Setup()};
    for (int i = 0; i < steps; ++i) actions.push_back(gen.Next());
    for (size_t i = 0; i < actions.size(); ++i) {
      const std::string& cmd = actions[i];
      SCOPED_TRACE("step " + std::to_string(i) + ": " + cmd);
      auto want = (*seq)->Run(cmd, 20s);
      ASSERT_TRUE(want.ok()) << want.error().ToString();

      int k = std::uniform_int_distribution<int>(0, 4)(rng);  // 0: no prediction at all
      for (int j = 0; j < k; ++j) {
        bool correct = std::uniform_int_distribution<int>(0, 2)(rng) == 0;
        ASSERT_TRUE(mgr_->Speculate(s, correct ? cmd : wrong_gen.Next(), 20s).ok());
      }
      auto got = mgr_->Commit(s, cmd, 20s);
      ASSERT_TRUE(got.ok()) << got.error().ToString();
      ++commits;
      hits += got->hit ? 1 : 0;
      int before = diffs;
      auto check = [&](bool same, const std::string& what, const std::string& a, const std::string& b) {
        if (same) return;
        ++diffs;
        ADD_FAILURE() << what << " differs\n--- sequential\n" << a << "\n--- speculative (hit=" << got->hit
                      << ")\n" << b;
      };
      check(want->stdout_data == got->stdout_data, "stdout",
            want->stdout_data, got->stdout_data);
      check(want->stderr_data == got->stderr_data, "stderr",
            want->stderr_data, got->stderr_data);
      check(want->exit_code == got->exit_code, "exit code", std::to_string(want->exit_code),
            std::to_string(got->exit_code));
      auto head = mgr_->ShowCheckpoint(got->head);
      ASSERT_TRUE(head.ok());
      auto head_shell = sandbox::ShellState::Parse(head->shell_state);
      ASSERT_TRUE(head_shell.ok());
      check((*seq)->shell_state() == *head_shell, "shell state", (*seq)->shell_state().Serialize(),
            head_shell->Serialize());
      // The sequential tree as it is on disk (its upper over the base), not
      // through the sandbox's merged mount: that one is idmapped for the
      // sandbox's user namespace, so from the host it shows every owner
      // shifted by the id range. The session's layers are read on disk too.
      std::string a = UnshiftOwners(NormaliseLinks(Snapshot((*seq)->root() + tree)), spec.ids);
      std::string b = HeadSnapshot(s, tree);
      check(a == b, "file tree", a, b);
      if (diffs != before) break;  // later steps would only repeat the difference
    }
    ++sequences;
    ASSERT_TRUE((*seq)->Destroy().ok());
    seq->reset();
    ASSERT_TRUE(RemoveTree(seq_dir).ok());
    ASSERT_TRUE(mgr_->DestroySession(s).ok());
  }
  std::printf("differential%s: %d sequences, %d commits compared (%d hits), %d differences\n",
              pool > 0 ? " (warm pool)" : "", sequences, commits, hits, diffs);
  EXPECT_EQ(diffs, 0);
}

}  // namespace
}  // namespace specula::core::testing
