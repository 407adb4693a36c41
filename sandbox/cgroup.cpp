#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "sandbox/device_filter.h"

namespace specula::sandbox {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

Status WriteFile(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::FromErrno("open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return Error::FromErrno("write '" + value + "' to " + path);
  }
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::FromErrno("read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// root/parent/leaf, making each missing directory on the way (enter(dir)
// on each before going below it). `exclusive`: the leaf must be new. A
// parent pruned by another instance's RemoveCgroupParent between two
// mkdirs (ENOENT) makes the chain start again, a few times.
Result<std::string> MakeChain(const std::string& root, const std::string& parent, const std::string& leaf,
                              bool exclusive, const std::function<void(const std::string&)>& enter) {
  const std::vector<std::string> parts = Split(parent + "/" + leaf, '/');
  for (int attempt = 0;; ++attempt) {
    std::string dir = root;
    int err = 0;
    for (size_t i = 0; i < parts.size() && err == 0; ++i) {
      if (enter) enter(dir);
      dir += "/" + parts[i];
      const bool leaf_dir = i + 1 == parts.size();
      if (::mkdir(dir.c_str(), 0755) != 0 && (errno != EEXIST || (leaf_dir && exclusive))) err = errno;
    }
    if (err == 0) return dir;
    if (err != ENOENT || attempt == 7) return Error::FromErrno("mkdir " + dir, err);
  }
}

// A limit the policy sets but no hierarchy can enforce: refused, not
// silently dropped. On a pure cgroup2 host the controller is missing from
// the sandbox's parent (not delegated down to it); on a hybrid one it is
// neither in cgroup2 nor mounted as v1.
Error NoController(const std::string& controller, const CgroupLayout& layout) {
  return Error(Code::kUnavailable, "no " + controller + " cgroup controller: cgroup2 at " + layout.v2_root +
                                       " does not offer it to the sandbox's cgroup and no v1 hierarchy has it")
      .WithHint(layout.v1.empty() ? "enable it for specula's parent cgroup: echo +" + controller +
                                        " > <parent>/cgroup.subtree_control (specula doctor: cgroup.controllers)"
                                  : "mount the v1 " + controller + " hierarchy under /sys/fs/cgroup/" + controller);
}

bool ValidRelative(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.back() == '/') return false;
  for (const auto& part : Split(p, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

// The fields of one mountinfo line, split on single spaces (the kernel
// escapes spaces inside a field, so there are no empty fields).
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    size_t sp = line.find(' ');
    out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  return out;
}

// A mount point as the kernel writes it: space, tab, newline and backslash
// as \ooo (fs/proc_namespace.c, mangle()). Any other backslash is kept.
std::string UnescapeMountPoint(std::string_view field) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() &&
        octal(field[i + 1]) && octal(field[i + 2]) && octal(field[i + 3])) {
      out.push_back(static_cast<char>(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

}  // namespace

bool CgroupLayout::v2_has(const std::string& controller) const {
  if (v2_root.empty()) return false;
  auto text = ReadFile(v2_root + "/cgroup.controllers");
  if (!text.ok()) return false;
  std::stringstream ss(*text);
  std::string c;
  while (ss >> c) {
    if (c == controller) return true;
  }
  return false;
}

Result<CgroupLayout> DetectCgroupLayout() {
  SPECULA_ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/self/mountinfo"));
  return ParseCgroupLayout(text);
}

Result<CgroupLayout> ParseCgroupLayout(std::string_view mountinfo) {
  CgroupLayout layout;
  while (!mountinfo.empty()) {
    size_t nl = mountinfo.find('\n');
    std::string_view line = mountinfo.substr(0, nl);
    mountinfo.remove_prefix(nl == std::string_view::npos ? mountinfo.size() : nl + 1);
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER"
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    std::vector<std::string_view> left = Fields(line.substr(0, dash));
    std::vector<std::string_view> right = Fields(line.substr(dash + 3));
    if (left.size() < 5 || right.size() < 3) continue;
    std::string mountpoint = UnescapeMountPoint(left[4]);
    if (mountpoint.empty() || mountpoint.front() != '/') continue;  // not a mountinfo line
    const std::string_view fstype = right[0];
    if (fstype == "cgroup2" && layout.v2_root.empty()) {
      layout.v2_root = std::move(mountpoint);
    } else if (fstype == "cgroup") {
      for (const auto& opt : Split(std::string(right[2]), ',')) {
        if (opt == "memory" || opt == "pids" || opt == "cpu" || opt == "freezer" || opt == "devices") {
          layout.v1.emplace(opt, mountpoint);
        }
      }
    }
  }
  if (layout.v2_root.empty()) {
    return Error(Code::kUnavailable, "no cgroup2 hierarchy mounted")
        .WithHint("mount -t cgroup2 none /sys/fs/cgroup/unified");
  }
  return layout;
}

SandboxCgroup& SandboxCgroup::operator=(SandboxCgroup&& o) noexcept {
  if (this != &o) {
    Status st = Remove();
    if (!st.ok()) spdlog::warn("cgroup: {}", st.ToString());
    v2_path_ = std::move(o.v2_path_);
    v2_id_ = o.v2_id_;
    v1_paths_ = std::move(o.v1_paths_);
    v1_freezer_ = std::move(o.v1_freezer_);
    v1_cpu_ = std::move(o.v1_cpu_);
    device_filter_ = o.device_filter_;
    procs_fds_ = std::move(o.procs_fds_);
    v2_dir_ = std::move(o.v2_dir_);
    frozen_v1_ = o.frozen_v1_;
    prune_parent_ = o.prune_parent_;
    o.v2_path_.clear();
    o.v1_paths_.clear();
  }
  return *this;
}

SandboxCgroup::~SandboxCgroup() {
  Status st = Remove();
  if (!st.ok()) spdlog::warn("cgroup: {}", st.ToString());
}

Result<SandboxCgroup> SandboxCgroup::Create(const std::string& parent_in, const std::string& name,
                                            const policy::Resources& limits,
                                            const DeviceFilterProgram& device_filter) {
  const std::string parent = parent_in.empty() ? "specula" : parent_in;
  if (!ValidRelative(parent)) {
    return Error(Code::kInvalidArgument, "cgroup parent '" + parent + "' must be a relative path");
  }
  SPECULA_ASSIGN_OR_RETURN(CgroupLayout layout, DetectCgroupLayout());
  const std::string leaf = "specula-" + name;
  SandboxCgroup cg;
  cg.prune_parent_ = parent_in.empty();

  // cgroup2: the parent must delegate the controllers it can to its
  // children. Another instance closing may remove an empty parent between
  // two of these mkdirs (RemoveCgroupParent prunes): then the chain is made
  // again.
  auto delegate = [](const std::string& dir) {
    for (const char* c : {"+memory", "+pids", "+cpu"}) {
      (void)WriteFile(dir + "/cgroup.subtree_control", c);  // best effort, may be absent
    }
  };
  SPECULA_ASSIGN_OR_RETURN(cg.v2_path_, MakeChain(layout.v2_root, parent, leaf, true, delegate));
  CgroupLayout v2_layout;
  v2_layout.v2_root = cg.v2_path_;  // its cgroup.controllers: what the sandbox's dir really has
  struct stat st {};
  if (::stat(cg.v2_path_.c_str(), &st) != 0) return Error::FromErrno("stat " + cg.v2_path_);
  cg.v2_id_ = st.st_ino;  // on cgroup2 the inode number is the cgroup id

  // For each controller: the cgroup2 dir when it has it, else the v1 hierarchy.
  auto v1_dir = [&](const std::string& ctrl) -> Result<std::string> {
    auto it = layout.v1.find(ctrl);
    if (it == layout.v1.end()) return std::string();
    const std::string dir = it->second + "/" + parent + "/" + leaf;
    if (std::find(cg.v1_paths_.begin(), cg.v1_paths_.end(), dir) == cg.v1_paths_.end()) {
      SPECULA_TRY(MakeChain(it->second, parent, leaf, false, nullptr));
      cg.v1_paths_.push_back(dir);
    }
    return dir;
  };

  const std::string mem = std::to_string(limits.memory_bytes);
  if (v2_layout.v2_has("memory")) {
    SPECULA_TRY(WriteFile(cg.v2_path_ + "/memory.max", mem));
    (void)WriteFile(cg.v2_path_ + "/memory.swap.max", "0");
  } else {
    SPECULA_ASSIGN_OR_RETURN(std::string d, v1_dir("memory"));
    if (d.empty()) return NoController("memory", layout);
    SPECULA_TRY(WriteFile(d + "/memory.limit_in_bytes", mem));
    (void)WriteFile(d + "/memory.memsw.limit_in_bytes", mem);  // only with swap accounting
  }
  const std::string pids = std::to_string(limits.pids);
  if (v2_layout.v2_has("pids")) {
    SPECULA_TRY(WriteFile(cg.v2_path_ + "/pids.max", pids));
  } else {
    SPECULA_ASSIGN_OR_RETURN(std::string d, v1_dir("pids"));
    if (d.empty()) return NoController("pids", layout);
    SPECULA_TRY(WriteFile(d + "/pids.max", pids));
  }
  const uint64_t quota = static_cast<uint64_t>(limits.cpu_millis) * 100;  // period 100 ms
  if (v2_layout.v2_has("cpu")) {
    SPECULA_TRY(WriteFile(cg.v2_path_ + "/cpu.max", std::to_string(quota) + " 100000"));
    SPECULA_TRY(WriteFile(cg.v2_path_ + "/cpu.weight", std::to_string(limits.cpu_weight)));
  } else {
    SPECULA_ASSIGN_OR_RETURN(std::string d, v1_dir("cpu"));
    if (d.empty()) {
      spdlog::warn("cgroup: no cpu controller; cpu limits not applied");
    } else {
      SPECULA_TRY(WriteFile(d + "/cpu.cfs_period_us", "100000"));
      SPECULA_TRY(WriteFile(d + "/cpu.cfs_quota_us", std::to_string(quota)));
      cg.v1_cpu_ = d;
      SPECULA_TRY(cg.SetCpuWeight(limits.cpu_weight));
    }
  }
  if (!Exists(cg.v2_path_ + "/cgroup.freeze")) {
    SPECULA_ASSIGN_OR_RETURN(cg.v1_freezer_, v1_dir("freezer"));
  }
  // Devices: only what the sandbox's /dev provides, read and write, no
  // mknod. v1 here (the devices controller); on cgroup2 the same list is a
  // BPF_CGROUP_DEVICE program (device_filter.h), attached below on every
  // host, since the kernel runs both checks.
  if (layout.v1.count("devices") > 0) {
    SPECULA_ASSIGN_OR_RETURN(std::string d, v1_dir("devices"));
    SPECULA_TRY_CTX(WriteFile(d + "/devices.deny", "a"), "device allowlist");
    for (const auto& rule : SandboxDeviceRules()) {
      SPECULA_TRY_CTX(WriteFile(d + "/devices.allow", rule.V1Line()), "device allowlist");
    }
  }
  SPECULA_ASSIGN_OR_RETURN(cg.device_filter_, device_filter.Attach(cg.v2_path_));
  if (!cg.device_filter_ && layout.v1.count("devices") == 0) {
    // Still no device reachable: no CAP_MKNOD, seccomp refuses mknod, every
    // mount is nodev. `specula doctor` reports the missing layer.
    spdlog::warn("cgroup: no devices controller and no cgroup BPF; device allowlist not applied");
  }

  cg.v2_dir_.Reset(::open(cg.v2_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.v2_dir_) return Error::FromErrno("open " + cg.v2_path_);
  for (const auto& dir : cg.paths()) {
    UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return Error::FromErrno("open " + dir + "/cgroup.procs");
    cg.procs_fds_.push_back(std::move(fd));
  }
  return cg;
}

std::vector<int> SandboxCgroup::v1_procs_fds() const {
  std::vector<int> out;
  for (size_t i = 1; i < procs_fds_.size(); ++i) out.push_back(procs_fds_[i].get());
  return out;
}

std::vector<std::string> SandboxCgroup::paths() const {
  std::vector<std::string> out;
  if (!v2_path_.empty()) out.push_back(v2_path_);
  out.insert(out.end(), v1_paths_.begin(), v1_paths_.end());
  return out;
}

Status SandboxCgroup::SetCpuWeight(uint32_t weight) {
  if (weight < 1 || weight > 10000) {
    return Error(Code::kInvalidArgument, "cpu weight " + std::to_string(weight) + " outside 1..10000");
  }
  if (!v1_cpu_.empty()) {
    uint64_t shares = std::max<uint64_t>(2, uint64_t{weight} * 1024 / 100);
    return WriteFile(v1_cpu_ + "/cpu.shares", std::to_string(shares));
  }
  if (v2_path_.empty()) return Error(Code::kFailedPrecondition, "cgroup removed");
  if (!Exists(v2_path_ + "/cpu.weight")) return Status::Ok();  // no cpu controller: nothing was set
  return WriteFile(v2_path_ + "/cpu.weight", std::to_string(weight));
}

Status SandboxCgroup::Freeze() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  if (v1_freezer_.empty()) {
    SPECULA_TRY_CTX(WriteFile(v2_path_ + "/cgroup.freeze", "1"), "freeze");
    while (true) {
      SPECULA_ASSIGN_OR_RETURN(std::string ev, ReadFile(v2_path_ + "/cgroup.events"));
      if (ev.find("frozen 1") != std::string::npos) return Status::Ok();
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  } else {
    SPECULA_TRY_CTX(WriteFile(v1_freezer_ + "/freezer.state", "FROZEN"), "freeze");
    frozen_v1_ = true;
    while (true) {
      SPECULA_ASSIGN_OR_RETURN(std::string s, ReadFile(v1_freezer_ + "/freezer.state"));
      if (s.rfind("FROZEN", 0) == 0) return Status::Ok();
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return Error(Code::kDeadlineExceeded, "freeze: cgroup did not reach frozen state in 10 s");
}

Status SandboxCgroup::Thaw() {
  if (v1_freezer_.empty()) return WriteFile(v2_path_ + "/cgroup.freeze", "0").Context("thaw");
  frozen_v1_ = false;
  return WriteFile(v1_freezer_ + "/freezer.state", "THAWED").Context("thaw");
}

Result<std::vector<pid_t>> SandboxCgroup::Pids() const {
  SPECULA_ASSIGN_OR_RETURN(std::string text, ReadFile(v2_path_ + "/cgroup.procs"));
  std::vector<pid_t> pids;
  std::stringstream ss(text);
  pid_t p;
  while (ss >> p) pids.push_back(p);
  return pids;
}

Result<uint64_t> SandboxCgroup::TaskCount() const {
  if (!v2_dir_) return Error(Code::kFailedPrecondition, "cgroup removed");
  UniqueFd threads(::openat(v2_dir_.get(), "cgroup.threads", O_RDONLY | O_CLOEXEC));
  if (!threads) return Error::FromErrno("open " + v2_path_ + "/cgroup.threads");
  char buf[4096];
  uint64_t lines = 0;
  for (;;) {
    ssize_t n = ::read(threads.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + v2_path_ + "/cgroup.threads");
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n' ? 1 : 0;
  }
  return lines;
}

Result<bool> SandboxCgroup::HasProcessOtherThan(pid_t except) const {
  if (!v2_dir_) return Error(Code::kFailedPrecondition, "cgroup removed");
  // A fresh fd per call: a shared one's file position would race between threads.
  UniqueFd procs(::openat(v2_dir_.get(), "cgroup.procs", O_RDONLY | O_CLOEXEC));
  if (!procs) return Error::FromErrno("open " + v2_path_ + "/cgroup.procs");
  char buf[4096];
  pid_t current = 0;
  bool in_number = false;
  for (;;) {
    ssize_t n = ::read(procs.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("read " + v2_path_ + "/cgroup.procs");
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      char c = buf[i];
      if (c >= '0' && c <= '9') {
        current = current * 10 + (c - '0');
        in_number = true;
      } else if (in_number) {  // one pid per line
        if (current != except) return true;
        current = 0;
        in_number = false;
      }
    }
  }
  return in_number && current != except;
}

Status SandboxCgroup::KillAll() {
  if (v2_path_.empty()) return Status::Ok();
  if (Exists(v2_path_ + "/cgroup.kill")) return WriteFile(v2_path_ + "/cgroup.kill", "1");
  SPECULA_ASSIGN_OR_RETURN(auto pids, Pids());
  for (pid_t p : pids) ::kill(p, SIGKILL);
  return Status::Ok();
}

std::vector<std::string> CgroupParentDirs(const CgroupLayout& layout, const std::string& parent) {
  std::vector<std::string> dirs;
  if (!layout.v2_root.empty()) dirs.push_back(layout.v2_root + "/" + parent);
  for (const auto& [controller, mount] : layout.v1) {
    std::string d = mount + "/" + parent;
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(std::move(d));
  }
  return dirs;
}

std::vector<std::string> CgroupParentAncestors(const CgroupLayout& layout, const std::string& parent) {
  std::vector<std::string> out;
  for (const auto& dir : CgroupParentDirs(layout, parent)) {
    std::string up = dir;
    for (size_t n = std::count(parent.begin(), parent.end(), '/'); n > 0; --n) {
      up.resize(up.rfind('/'));
      out.push_back(up);
    }
  }
  return out;
}

Status RemoveCgroupParent(const std::string& parent) {
  if (!ValidRelative(parent)) {
    return Error(Code::kInvalidArgument, "cgroup parent \"" + parent + "\" is not a relative path");
  }
  SPECULA_ASSIGN_OR_RETURN(CgroupLayout layout, DetectCgroupLayout());
  Status result;
  for (const auto& dir : CgroupParentDirs(layout, parent)) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) continue;
    if (result.ok()) result = Error::FromErrno("rmdir " + dir);
  }
  // Deepest first, so a parent emptied by its child's removal goes next;
  // ENOTEMPTY or EBUSY: someone else's, kept.
  for (const auto& dir : CgroupParentAncestors(layout, parent)) (void)::rmdir(dir.c_str());
  return result;
}

Status SandboxCgroup::Remove() {
  procs_fds_.clear();
  v2_dir_.Reset();
  if (frozen_v1_) (void)Thaw();
  std::vector<std::string> dirs = paths();
  Status result;
  for (const auto& dir : dirs) {
    // Dying tasks leave the cgroup asynchronously; give them a moment.
    bool removed = false;
    for (int i = 0; i < 2000 && !removed; ++i) {
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
        removed = true;
      } else if (errno == EBUSY) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      } else {
        break;
      }
    }
    if (!removed && result.ok()) result = Error::FromErrno("rmdir " + dir);
  }
  // The default parent has no owner to close it: the last sandbox in it
  // gives it back (ENOTEMPTY, EBUSY: still someone's; a sandbox being made
  // beside it makes its chain again, MakeChain).
  if (prune_parent_) {
    for (const auto& dir : dirs) (void)::rmdir(dir.substr(0, dir.rfind('/')).c_str());
  }
  v2_path_.clear();
  v1_paths_.clear();
  v1_freezer_.clear();
  return result;
}

}  // namespace specula::sandbox
