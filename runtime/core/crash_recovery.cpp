#include "runtime/core/crash_recovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/files.h"
#include "sandbox/cgroup.h"

namespace specula::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// How long killed processes get to disappear and their cgroups to empty.
// SIGKILL cannot be ignored; only a task stuck in the kernel takes longer.
constexpr milliseconds kGoneTimeout{10000};
constexpr milliseconds kPoll{20};

std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct MountLine {
  std::string mount_point;
  std::string source;
  std::string super_opts;
};

std::vector<MountLine> ParseMountinfo(const std::string& text) {
  std::vector<MountLine> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> fields;
    std::string w;
    while (f >> w) fields.push_back(w);
    if (fields.size() < 7) continue;
    auto sep = std::find(fields.begin() + 6, fields.end(), "-");
    MountLine m;
    m.mount_point = Unescape(fields[4]);
    if (sep != fields.end() && std::distance(sep, fields.end()) >= 4) {
      m.source = Unescape(*(sep + 2));
      m.super_opts = Unescape(*(sep + 3));
    }
    out.push_back(std::move(m));
  }
  return out;
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

// Alive and not a zombie (a zombie has already dropped its mounts).
bool Alive(pid_t pid) {
  auto stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto close = stat->rfind(')');
  return close == std::string::npos || close + 2 >= stat->size() || (*stat)[close + 2] != 'Z';
}

// Removes a cgroup directory and any child cgroups (children first). Retries
// while the last tasks are still leaving (EBUSY).
bool RemoveCgroupTree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> kids;
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (e->d_type == DT_DIR && n != "." && n != "..") kids.push_back(dir + "/" + n);
    }
    ::closedir(d);
    for (const auto& k : kids) RemoveCgroupTree(k);
  }
  auto deadline = steady_clock::now() + milliseconds(2000);
  while (::rmdir(dir.c_str()) != 0) {
    if (errno == ENOENT) return false;
    if (errno != EBUSY || steady_clock::now() > deadline) {
      spdlog::warn("crash recovery: rmdir {}: {}", dir, std::strerror(errno));
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
  return true;
}

ino_t MountNsInode(const std::string& proc) {
  struct stat st;
  if (::stat((proc + "/ns/mnt").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

Status WaitGone(const std::vector<pid_t>& pids, const std::vector<std::string>& cgroups, const std::string& what) {
  auto deadline = steady_clock::now() + kGoneTimeout;
  for (;;) {
    std::vector<pid_t> left;
    for (pid_t p : pids) {
      if (Alive(p)) left.push_back(p);
    }
    for (pid_t p : PidsInCgroups(cgroups)) left.push_back(p);
    if (left.empty()) return Status::Ok();
    // Re-kill: a task may have forked between the listing and the signal.
    for (pid_t p : left) ::kill(p, SIGKILL);
    if (steady_clock::now() > deadline) {
      return Error(Code::kUnavailable, std::to_string(left.size()) + " leftover process(es) of " + what +
                                           " survive SIGKILL (first pid " + std::to_string(left[0]) + ")");
    }
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace

Result<std::vector<std::string>> MountsUnder(const std::string& dir) {
  auto text = ReadText("/proc/self/mountinfo");
  if (!text) return Error::FromErrno("read /proc/self/mountinfo");
  std::set<std::string> points;
  for (auto& m : ParseMountinfo(*text)) {
    if (IsUnder(m.mount_point, dir)) points.insert(m.mount_point);
  }
  std::vector<std::string> out(points.begin(), points.end());
  // Deepest first: a child mount must go before the mount holding it.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    auto da = std::count(a.begin(), a.end(), '/'), db = std::count(b.begin(), b.end(), '/');
    return da != db ? da > db : a > b;
  });
  return out;
}

Result<std::vector<pid_t>> ForeignProcessesUsing(const std::string& dir) {
  ino_t self_ns = MountNsInode("/proc/self");
  if (self_ns == 0) return Error::FromErrno("stat /proc/self/ns/mnt");
  DIR* d = ::opendir("/proc");
  if (!d) return Error::FromErrno("opendir /proc");
  std::vector<pid_t> pids;
  while (auto* e = ::readdir(d)) {
    char* end = nullptr;
    long v = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || v <= 0) continue;
    pids.push_back(static_cast<pid_t>(v));
  }
  ::closedir(d);
  std::vector<pid_t> out;
  for (pid_t p : pids) {
    std::string proc = "/proc/" + std::to_string(p);
    ino_t ns = MountNsInode(proc);
    if (ns == 0 || ns == self_ns) continue;
    auto text = ReadText(proc + "/mountinfo");
    if (!text) continue;
    // Only the root mount counts: a sandbox's root is the overlay built in
    // the state dir. Processes that merely copied a mount table holding the
    // state dir (someone's unshare -m) are not ours to kill. Layers passed
    // by fd leave no path in the options; the source names the upper dir.
    for (auto& m : ParseMountinfo(*text)) {
      bool ours = m.super_opts.find(dir + "/") != std::string::npos || IsUnder(m.source, dir);
      if (m.mount_point == "/" && ours && Alive(p)) {
        out.push_back(p);
        break;
      }
    }
  }
  return out;
}

std::vector<std::string> SandboxCgroupDirs(const std::string& name) {
  std::vector<std::string> out;
  auto layout = sandbox::DetectCgroupLayout();
  if (!layout.ok()) return out;
  std::set<std::string> roots;
  if (!layout->v2_root.empty()) roots.insert(layout->v2_root);
  for (const auto& [ctrl, mnt] : layout->v1) roots.insert(mnt);
  // Directly under "specula" (older versions) or one level deeper, under
  // a daemon's instance parent ("specula/i-<hash>", sandbox/sandbox_watch.h).
  auto add_if_dir = [&out](const std::string& dir) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) out.push_back(dir);
  };
  for (const auto& r : roots) {
    add_if_dir(r + "/specula/specula-" + name);
    if (DIR* d = ::opendir((r + "/specula").c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.rfind("i-", 0) == 0) add_if_dir(r + "/specula/" + n + "/specula-" + name);
      }
      ::closedir(d);
    }
  }
  return out;
}

std::vector<pid_t> PidsInCgroups(const std::vector<std::string>& dirs) {
  std::set<pid_t> pids;
  for (const auto& d : dirs) {
    auto text = ReadText(d + "/cgroup.procs");
    if (!text) continue;
    std::istringstream in(*text);
    long v;
    while (in >> v) {
      if (v > 0) pids.insert(static_cast<pid_t>(v));
    }
  }
  return {pids.begin(), pids.end()};
}

Result<size_t> KillForeignUsers(const std::string& state_dir) {
  SPECULA_ASSIGN_OR_RETURN(auto pids, ForeignProcessesUsing(state_dir));
  for (pid_t p : pids) ::kill(p, SIGKILL);
  SPECULA_TRY(WaitGone(pids, {}, "processes rooted in " + state_dir));
  if (!pids.empty()) spdlog::info("crash recovery: killed {} process(es) rooted in {}", pids.size(), state_dir);
  return pids.size();
}

Result<LeftoverReport> ReapLeftovers(const std::string& state_dir, const std::string& branches_dir,
                                     const std::vector<std::string>& sandbox_names, const std::string& stage_root) {
  LeftoverReport rep;
  std::vector<std::string> cgroups;
  for (const auto& n : sandbox_names) {
    for (auto& d : SandboxCgroupDirs(n)) cgroups.push_back(std::move(d));
  }
  for (const auto& d : cgroups) {
    // cgroup2's cgroup.kill also catches tasks forking while we kill.
    if (int fd = ::open((d + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC); fd >= 0) {
      if (::write(fd, "1", 1) != 1) spdlog::debug("crash recovery: cgroup.kill {}: {}", d, std::strerror(errno));
      ::close(fd);
    }
  }
  auto in_cgroups = PidsInCgroups(cgroups);
  for (pid_t p : in_cgroups) ::kill(p, SIGKILL);
  // A finished branch waits frozen for its commit. A frozen task acts on
  // SIGKILL only once thawed (cgroup v1's freezer; cgroup2 wakes it), so
  // thaw after the kill: the tasks die without running another instruction.
  for (const auto& d : cgroups) {
    for (const char* f : {"/freezer.state", "/cgroup.freeze"}) {
      if (int fd = ::open((d + f).c_str(), O_WRONLY | O_CLOEXEC); fd >= 0) {
        const char* v = f[1] == 'f' ? "THAWED" : "0";
        if (::write(fd, v, std::strlen(v)) < 0) spdlog::debug("crash recovery: thaw {}{}: {}", d, f, std::strerror(errno));
        ::close(fd);
      }
    }
  }
  SPECULA_ASSIGN_OR_RETURN(auto foreign, ForeignProcessesUsing(state_dir));
  for (pid_t p : foreign) ::kill(p, SIGKILL);
  std::set<pid_t> all(in_cgroups.begin(), in_cgroups.end());
  all.insert(foreign.begin(), foreign.end());
  rep.processes_killed = all.size();
  SPECULA_TRY(WaitGone(foreign, cgroups, "crashed sandboxes"));

  std::vector<std::string> roots{branches_dir};
  if (!stage_root.empty()) roots.push_back(stage_root);
  for (const auto& root : roots) {
    // Repeat: detaching a mount can uncover one mounted beneath it.
    for (int round = 0; round < 8; ++round) {
      SPECULA_ASSIGN_OR_RETURN(auto mounts, MountsUnder(root));
      if (mounts.empty()) break;
      for (const auto& m : mounts) {
        if (::umount2(m.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
          ++rep.mounts_removed;
        } else if (errno != EINVAL && errno != ENOENT) {
          return Error::FromErrno("umount " + m).Context("crash recovery");
        }
      }
    }
    SPECULA_ASSIGN_OR_RETURN(auto still, MountsUnder(root));
    if (!still.empty()) return Error(Code::kInternal, "crash recovery: " + still[0] + " stays mounted");
  }
  // Staged binds' mount points (nothing is mounted there any more).
  if (!stage_root.empty()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(stage_root, ec)) {
      if (Status st = RemoveTree(e.path().string()); !st.ok()) {
        spdlog::warn("crash recovery: {}", st.error().ToString());
      }
    }
  }
  for (const auto& d : cgroups) rep.cgroups_removed += RemoveCgroupTree(d) ? 1 : 0;
  if (rep.processes_killed + rep.mounts_removed + rep.cgroups_removed > 0) {
    spdlog::warn("crash recovery in {}: killed {} process(es), unmounted {}, removed {} cgroup(s)", state_dir,
                 rep.processes_killed, rep.mounts_removed, rep.cgroups_removed);
  }
  return rep;
}

}  // namespace specula::core
