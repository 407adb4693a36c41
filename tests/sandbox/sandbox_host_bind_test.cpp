// Binds from the host (SandboxSpec.binds) must reach the HOST's objects, also
// for namespaced ones: a lossy /proc/sys/net knob written inside the sandbox
// changes the host's value (sandbox/host_bind.h). Part of sandbox_serial_test:
// it changes a host-wide sysctl, so nothing may run beside it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "sandbox/sandbox.h"
#include "sandbox_test_util.h"

namespace specula::sandbox {
namespace {

using namespace std::chrono_literals;
using testing::MakeSpec;
using testing::ReadText;
using testing::ScratchDirs;
using testing::UniqueName;

constexpr const char* kSomaxconn = "/proc/sys/net/core/somaxconn";
constexpr const char* kBacklog = "/proc/sys/net/core/netdev_max_backlog";

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// Puts a host sysctl back to the value it had at construction, whatever the
// test did (also when an assertion fails half-way).
class SysctlRestorer {
 public:
  explicit SysctlRestorer(std::string path) : path_(std::move(path)), original_(ReadText(path_)) {}
  SysctlRestorer(const SysctlRestorer&) = delete;
  SysctlRestorer& operator=(const SysctlRestorer&) = delete;
  ~SysctlRestorer() {
    if (original_.empty()) return;
    if (ReadText(path_) != original_ && !WriteText(path_, original_)) {
      ADD_FAILURE() << "could not restore " << path_ << " to " << original_;
    }
  }
  const std::string& original() const { return original_; }

 private:
  std::string path_;
  std::string original_;
};

class SandboxHostBindTest : public testing::SandboxFixture {
 protected:
  SandboxHostBindTest() : SandboxFixture("hostbind") {}
};

TEST_F(SandboxHostBindTest, LossyNetSysctlBindChangesTheHostValue) {
  SysctlRestorer somaxconn(kSomaxconn);
  SysctlRestorer backlog(kBacklog);
  ASSERT_FALSE(somaxconn.original().empty());
  ASSERT_FALSE(backlog.original().empty());
  const long original = std::stol(somaxconn.original());
  const std::string wanted = std::to_string(original + 7);
  const std::string backlog_wanted = std::to_string(std::stol(backlog.original()) + 3);

  spec_.policy.sandbox.user_namespace = false;  // host knobs take writes from the host's root only
  spec_.binds.push_back({kSomaxconn, kSomaxconn, /*read_only=*/false});
  Start();
  // The sandbox starts from its own network namespace's defaults; whatever
  // it reads there, after the bind it sees and writes the host's knob.
  auto r = RunOk(std::string("cat ") + kSomaxconn + "; echo " + wanted + " > " + kSomaxconn +
                 " && echo wrote; cat " + kSomaxconn + "; echo " + backlog_wanted + " > " + kBacklog +
                 " || echo backlog-refused");
  EXPECT_EQ(r.stdout_data, somaxconn.original() + "wrote\n" + wanted + "\nbacklog-refused\n") << r.stderr_data;
  EXPECT_EQ(ReadText(kSomaxconn), wanted + "\n") << "the write inside must reach the host";
  EXPECT_EQ(ReadText(kBacklog), backlog.original()) << "a non-bound knob stays read-only";
  bool listed = false;
  for (const auto& [path, key] : sb_->ExternalMounts()) listed = listed || path == kSomaxconn;
  EXPECT_TRUE(listed) << "CRIU must be told about the bind";
}

TEST_F(SandboxHostBindTest, ReadOnlyNetSysctlBindShowsHostValueAndRefusesWrites) {
  SysctlRestorer somaxconn(kSomaxconn);
  spec_.policy.sandbox.user_namespace = false;
  spec_.binds.push_back({kSomaxconn, kSomaxconn, /*read_only=*/true});
  Start();
  auto r = RunOk(std::string("cat ") + kSomaxconn + "; echo 77 > " + kSomaxconn + " || echo refused");
  EXPECT_EQ(r.stdout_data, somaxconn.original() + "refused\n") << r.stderr_data;
  EXPECT_EQ(ReadText(kSomaxconn), somaxconn.original());
}

TEST_F(SandboxHostBindTest, RegularFileBindsReachTheHostFile) {
  const std::string rw = dirs_->root() + "/lossy-file";
  const std::string ro = dirs_->root() + "/ro-dir";
  ASSERT_TRUE(WriteText(rw, "before\n"));
  std::filesystem::create_directories(ro + "/sub");
  ASSERT_TRUE(WriteText(ro + "/sub/f", "host\n"));
  spec_.binds.push_back({rw, "/etc/specula-lossy", /*read_only=*/false});
  spec_.binds.push_back({ro, "/opt/specula-ro", /*read_only=*/true});
  Start();
  auto r = RunOk("cat /etc/specula-lossy; echo after > /etc/specula-lossy && echo wrote; "
                 "cat /opt/specula-ro/sub/f; echo x > /opt/specula-ro/sub/f || echo ro-refused; "
                 "touch /opt/specula-ro/new || echo ro-refused");
  EXPECT_EQ(r.stdout_data, "before\nwrote\nhost\nro-refused\nro-refused\n") << r.stderr_data;
  EXPECT_EQ(ReadText(rw), "after\n");
  EXPECT_EQ(ReadText(ro + "/sub/f"), "host\n");
  EXPECT_FALSE(std::filesystem::exists(ro + "/new"));
  // The overlay's upper dir holds only the (empty) mount targets, never the
  // bound content.
  EXPECT_EQ(ReadText(dirs_->upper() + "/etc/specula-lossy"), "");
}

TEST_F(SandboxHostBindTest, SymlinkOnTheHostPathIsRefused) {
  const std::string real_dir = dirs_->root() + "/real";
  std::filesystem::create_directories(real_dir);
  ASSERT_TRUE(WriteText(real_dir + "/f", "secret\n"));
  const std::string link_file = dirs_->root() + "/link-file";
  const std::string link_dir = dirs_->root() + "/link-dir";
  std::filesystem::create_symlink(real_dir + "/f", link_file);
  std::filesystem::create_directory_symlink(real_dir, link_dir);

  for (const std::string& host : {link_file, link_dir + "/f"}) {
    SandboxSpec spec = spec_;
    spec.binds.push_back({host, "/etc/specula-lossy", /*read_only=*/false});
    auto sb = Sandbox::Create(spec);
    ASSERT_FALSE(sb.ok()) << host;
    EXPECT_EQ(sb.error().code(), Code::kInvalidArgument) << sb.error().ToString();
    EXPECT_NE(sb.error().ToString().find("symlink"), std::string::npos) << sb.error().ToString();
    EXPECT_FALSE(std::filesystem::exists(spec.run_dir)) << "nothing is created before the check";
  }
}

// A writable host bind (a lossy path) is the host's own directory: with the
// sandbox's root mapped to host root on it (the idmap, or no user namespace
// at all), `chown 0:0 f; chmod 4755 f` made a setuid-root file on the host
// that any local user could run (an audit, 2026-12-07, confirmed with a
// setuid `euid` printer: euid=0 for uid 65534). Unless the policy allows
// setuid bits and file capabilities, a sandbox with a writable bind can set
// neither, anywhere.
TEST_F(SandboxHostBindTest, AWritableBindGetsNoSetuidFileAndNoFileCapability) {
  const std::string dir = dirs_->root() + "/lossy-dir";
  for (bool userns : {true, false}) {
    SCOPED_TRACE(userns ? "user namespace" : "no user namespace");
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
    SandboxSpec spec = spec_;
    spec.policy.sandbox.user_namespace = userns;
    spec.binds.push_back({dir, "/var/lossy", /*read_only=*/false});
    auto sb = Sandbox::Create(spec);
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    auto r = (*sb)->Run(
        "cd /var/lossy; cp /bin/true suid; chown 0:0 suid; chmod 4755 suid; chmod u+s suid; "
        "cp /bin/true sgid; chown 0:0 sgid; chmod 2755 sgid; "
        "python3 -c 'import os; os.close(os.open(\"made\", os.O_CREAT | os.O_WRONLY, 0o6755))'; "
        "cp /bin/true capped; setcap cap_setuid+ep capped; "
        "cp /bin/true plain; chmod 0750 plain && echo plain-ok; true",
        std::chrono::seconds(20));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_NE(r->stdout_data.find("plain-ok"), std::string::npos) << r->stderr_data;
    for (const char* name : {"suid", "sgid", "made", "capped"}) {
      struct stat st {};
      if (std::string(name) == "made" && ::lstat((dir + "/made").c_str(), &st) != 0) continue;  // refused outright
      ASSERT_EQ(::lstat((dir + "/" + name).c_str(), &st), 0) << name << ": " << r->stderr_data;
      EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u) << name << " mode " << std::oct << st.st_mode;
      EXPECT_LT(::lgetxattr((dir + "/" + name).c_str(), "security.capability", nullptr, 0), 0)
          << name << " has a file capability";
    }
    struct stat plain {};
    ASSERT_EQ(::lstat((dir + "/plain").c_str(), &plain), 0);
    EXPECT_EQ(plain.st_mode & 07777, 0750u) << "ordinary modes still work";
    ASSERT_TRUE((*sb)->Destroy().ok());
  }
  std::filesystem::remove_all(dir);
}

// The mount targets of binds are made inside the new root while the old
// root (the host's /) is still parked on /proc, so a symlink the upper dir
// holds on the way to a target (an earlier action's `ln -s /proc/tmp/x
// /var/cache`) led mkdir and the file bind's create onto the HOST's
// filesystem: an empty file or directory anywhere on the host (as host root
// without a user namespace; /etc/nologin locks every user out). Targets are
// now resolved beneath the new root without following any symlink.
TEST_F(SandboxHostBindTest, ASymlinkInTheUpperCannotLeadABindTargetOntoTheHost) {
  char tmpl[] = "/tmp/specula-victim-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string victim = tmpl;
  ASSERT_EQ(::chmod(victim.c_str(), 0777), 0);  // writable for a namespace's root too
  const std::string host_dir = dirs_->root() + "/lossy-dir";
  const std::string host_file = dirs_->root() + "/lossy-file";
  std::filesystem::create_directories(host_dir);
  ASSERT_TRUE(WriteText(host_file, "x\n"));
  std::filesystem::create_directories(dirs_->upper() + "/var");
  for (bool userns : {false, true}) {
    for (const std::string& link : {"/proc" + victim, "../proc" + victim}) {
      SCOPED_TRACE(std::string(userns ? "user namespace, " : "no user namespace, ") + link);
      std::filesystem::remove(dirs_->upper() + "/var/cache");
      std::filesystem::create_symlink(link, dirs_->upper() + "/var/cache");
      SandboxSpec spec = spec_;
      spec.policy.sandbox.user_namespace = userns;
      spec.binds.push_back({host_dir, "/var/cache/pip", /*read_only=*/false});
      spec.binds.push_back({host_file, "/var/cache/history", /*read_only=*/false});
      auto sb = Sandbox::Create(spec);
      EXPECT_FALSE(std::filesystem::exists(victim + "/pip")) << "a directory was made on the host";
      EXPECT_FALSE(std::filesystem::exists(victim + "/history")) << "a file was made on the host";
      if (sb.ok()) {
        ADD_FAILURE() << "a bind target behind a symlink must be refused";
        EXPECT_TRUE((*sb)->Destroy().ok());
      } else {
        EXPECT_NE(sb.error().ToString().find("bind target"), std::string::npos) << sb.error().ToString();
      }
      std::filesystem::remove_all(victim + "/pip");
      std::filesystem::remove_all(victim + "/history");
    }
  }
  std::filesystem::remove_all(victim);
}

// A FIFO the upper dir holds where a file bind's target goes: the create
// step opened it for writing and blocked forever (no reader), and with it
// the sandbox's start and the daemon thread that waited for it.
TEST_F(SandboxHostBindTest, AFifoAtAFileBindTargetDoesNotHangTheStart) {
  const std::string host_file = dirs_->root() + "/lossy-file";
  ASSERT_TRUE(WriteText(host_file, "host\n"));
  std::filesystem::create_directories(dirs_->upper() + "/var");
  ASSERT_EQ(::mkfifo((dirs_->upper() + "/var/history").c_str(), 0644), 0);
  spec_.binds.push_back({host_file, "/var/history", /*read_only=*/false});
  SandboxSpec spec = spec_;
  auto made = std::async(std::launch::async, [spec] { return Sandbox::Create(spec); });
  if (made.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the sandbox's start hangs on the planted FIFO";
    std::abort();  // the stuck child would keep this process up forever
  }
  auto sb = made.get();
  ASSERT_TRUE(sb.ok()) << sb.error().ToString();
  auto r = (*sb)->Run("cat /var/history", std::chrono::seconds(20));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->stdout_data, "host\n") << r->stderr_data;
  EXPECT_TRUE((*sb)->Destroy().ok());
}

}  // namespace
}  // namespace specula::sandbox
