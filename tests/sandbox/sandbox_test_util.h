// Shared helpers for the sandbox tests: unique names, scratch directories
// that are removed even when a test fails (after making sure nothing is
// still mounted below them), and a default spec.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <chrono>
#include <string>
#include <vector>

#include "common/paths.h"
#include "common/spawn.h"
#include "sandbox/sandbox.h"

#include <gtest/gtest.h>

namespace specula::sandbox::testing {

inline std::string UniqueName(const std::string& tag) {
  static std::atomic<int> counter{0};
  return tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// /tmp/specula-test-<name>/{upper,work,run}; removed on destruction.
class ScratchDirs {
 public:
  explicit ScratchDirs(const std::string& name) : root_("/tmp/specula-test-" + name) {
    std::filesystem::create_directories(root_ + "/upper");
    std::filesystem::create_directories(root_ + "/work");
  }
  ScratchDirs(const ScratchDirs&) = delete;
  ScratchDirs& operator=(const ScratchDirs&) = delete;
  ~ScratchDirs() {
    // A failed test may leave the overlay mounted: never recurse into it.
    std::ifstream mi("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mi, line)) {
      std::istringstream words(line);
      std::string id, parent, dev, root, mountpoint;
      words >> id >> parent >> dev >> root >> mountpoint;
      if (mountpoint.rfind(root_ + "/", 0) == 0) ::umount2(mountpoint.c_str(), MNT_DETACH);
    }
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  const std::string& root() const { return root_; }
  std::string upper() const { return root_ + "/upper"; }
  std::string work() const { return root_ + "/work"; }
  std::string run() const { return root_ + "/run"; }

 private:
  std::string root_;
};

inline SandboxSpec MakeSpec(const std::string& name, const ScratchDirs& dirs) {
  SandboxSpec spec;
  spec.name = name;
  spec.upper_dir = dirs.upper();
  spec.work_dir = dirs.work();
  spec.run_dir = dirs.run();
  spec.policy = policy::DefaultPolicy();
  return spec;
}

// CRIU, as the sandbox tests drive it directly (the runtime has its own
// driver, runtime/criu): the setup's CRIU, a 60 s timeout, CRIU_FAULT=130
// (harmless where hardware breakpoints work).
inline bool HaveCriu() { return ::access(CriuPath().c_str(), X_OK) == 0; }

inline Result<SpawnResult> RunCriu(const std::vector<std::string>& args) {
  SpawnOptions o;
  o.argv = {CriuPath()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env_set = {"CRIU_FAULT=130"};
  o.timeout = std::chrono::seconds(60);
  return Spawn(o);
}

// `criu dump` of the sandbox's tree into `images` (created), naming every
// external mount; the sandbox's netns has only loopback, so no network lock
// (which would need iptables-restore, absent here). The dump kills the tree.
inline Status CriuDump(const Sandbox& sb, const std::string& images) {
  std::filesystem::create_directories(images);
  std::vector<std::string> args = {"dump", "-t", std::to_string(sb.init_pid()), "-D", images,
                                   "-o", "dump.log", "-v4", "--network-lock", "skip"};
  for (const auto& [path, key] : sb.ExternalMounts()) {
    args.push_back("--external");
    args.push_back("mnt[" + path + "]:" + key);
  }
  auto d = RunCriu(args);
  if (!d.ok()) return d.error();
  if (!d->success()) {
    return Error(Code::kInternal, "criu dump: " + d->err + ErrorLines(ReadText(images + "/dump.log"), 15));
  }
  return Status::Ok();
}

// Sandbox::CreateRestored with `criu restore -d --root` from `images`.
inline Result<std::unique_ptr<Sandbox>> CriuRestore(const SandboxSpec& spec, const std::string& images) {
  return Sandbox::CreateRestored(spec, [&](const RestoreTarget& t) -> Result<pid_t> {
    std::string pidfile = images + "/restored.pid";
    std::vector<std::string> args = {"restore", "-D", images, "-o", "restore.log", "-v4", "-d",
                                     "--root", t.root, "--pidfile", pidfile, "--manage-cgroups=ignore",
                                     "--network-lock", "skip"};
    for (const auto& [key, host] : t.external_mounts) {
      args.push_back("--external");
      args.push_back("mnt[" + key + "]:" + host);
    }
    auto res = RunCriu(args);
    if (!res.ok()) return res.error();
    if (!res->success()) {
      return Error(Code::kInternal, "criu restore: " + ErrorLines(ReadText(images + "/restore.log"), 15));
    }
    return static_cast<pid_t>(std::stoi(ReadText(pidfile)));
  });
}

// A fixture with one sandbox from MakeSpec: tests adjust spec_, then
// Start(); TearDown destroys it (checking that the destroy succeeds) before
// the scratch dirs go. Root only (skips otherwise).
class SandboxFixture : public ::testing::Test {
 protected:
  explicit SandboxFixture(std::string tag) : tag_(std::move(tag)) {}
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    name_ = UniqueName(tag_);
    dirs_ = std::make_unique<ScratchDirs>(name_);
    spec_ = MakeSpec(name_, *dirs_);
  }
  void TearDown() override {
    if (sb_) {
      Status st = sb_->Destroy();
      EXPECT_TRUE(st.ok()) << st.ToString();
      sb_.reset();
    }
    dirs_.reset();
  }
  void Start() {
    auto r = Sandbox::Create(spec_);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    sb_ = std::move(r).value();
  }
  ActionResult RunOk(const std::string& cmd, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto r = sb_->Run(cmd, timeout);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    if (!r.ok()) return ActionResult{};
    return *r;
  }

  std::string tag_;
  std::string name_;
  std::unique_ptr<ScratchDirs> dirs_;
  SandboxSpec spec_;
  std::unique_ptr<Sandbox> sb_;
};

}  // namespace specula::sandbox::testing
