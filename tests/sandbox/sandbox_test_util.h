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
#include <string>

#include "sandbox/sandbox.h"

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

}  // namespace specula::sandbox::testing
