// Cross-session isolation and the runtime's own state (issue 12 "Masked
// paths"): session A cannot read anything session B wrote or ran (B's
// files, its layers image, CRIU images, journals, the database), the
// daemon's state dir shows nothing, and no branch reaches the daemon's
// socket or a host service on the loopback. Default policy, sessions over
// the host's /.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>

#include "common/unique_fd.h"
#include "tests/security/security_test_util.h"

namespace specula::testing {
namespace {

using CrossSession = SecurityTest;

// A second session (B) that wrote a secret into its layer and has a live
// background process, so it has a layer, a checkpoint with CRIU images and
// a journal.
struct SessionB {
  std::string id;
  std::string secret;
};

SessionB MakeSessionB(SecurityTest& t) {
  SessionB b;
  b.id = t.CreateSession();
  b.secret = "secret-of-b-" + t.marker();
  RunOut w = t.Run("mkdir -p /tmp/b-private && echo " + b.secret + " > /tmp/b-private/secret && (sleep 3600 &) ; true",
                   b.id);
  EXPECT_EQ(w.exit_code, 0) << w.err;
  RunOut seen = t.Run("cat /tmp/b-private/secret", b.id);
  EXPECT_EQ(seen.out, b.secret + "\n");
  return b;
}

// Session class: B's files are in B's layers only; A sees its own base.
TEST_F(CrossSession, SessionAReadsNoFileSessionBWrote) {
  SessionB b = MakeSessionB(*this);
  RunOut r = Run(Attack("read /tmp/b-private/secret /tmp/b-private"));
  ExpectAllBlocked(r, "B's files from A");
  // Nor anywhere under the root A can read (B's layer is a host file).
  RunOut g = Run("grep -rls --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev " + b.secret + " " +
                 dir_.path() + " /tmp 2>/dev/null | head -5; true");
  EXPECT_EQ(g.out.find("/"), std::string::npos) << "A found B's secret in: " << g.out;
}

// Session class: B's processes are not in A's pid namespace and cannot be
// signalled by A.
TEST_F(CrossSession, SessionACannotSeeOrSignalSessionBsProcesses) {
  SessionB b = MakeSessionB(*this);
  RunOut r = Run("for c in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $c; echo; done");
  EXPECT_EQ(r.out.find("sleep 3600"), std::string::npos) << r.out;
  RunOut k = Run("pkill -9 -f 'sleep 3600'; echo rc=$?");
  EXPECT_NE(k.out.find("rc=1"), std::string::npos) << "A found a process to kill: " << k.out;
  RunOut alive = Run("pgrep -f 'sleep 3600' >/dev/null && echo alive", b.id);
  EXPECT_EQ(alive.out, "alive\n");
}

// Masked paths: the daemon's state dir (database, layers image with every
// session's layers, CRIU images of B's processes, journals) shows nothing
// from a branch.
TEST_F(CrossSession, StateDirDatabaseLayersImagesAndJournalsInvisible) {
  SessionB b = MakeSessionB(*this);
  const std::string& sd = daemon_->state_dir();
  RunOut r = Run(Attack("read " + sd + "/specula.db " + sd + "/specula.db-wal " + sd + "/layers.img " + sd +
                        "/images " + sd + "/journal " + sd + "/fs " + sd + "/speculad.lock"));
  ExpectAllBlocked(r, "the state dir");
  RunOut ls = Run("ls -A " + sd + " 2>&1; true");
  EXPECT_EQ(ls.out.find("specula.db"), std::string::npos) << ls.out;
  EXPECT_EQ(ls.out.find("layers.img"), std::string::npos) << ls.out;
}

// The same through every path a branch has to the host's files: /proc/<pid>/root
// of each process, and the daemon's /proc entries (not in the pid ns).
TEST_F(CrossSession, StateDirInvisibleThroughProcPidRoot) {
  const std::string& sd = daemon_->state_dir();
  RunOut r = Run(Attack("proc-root " + sd + "/specula.db " + sd + "/layers.img " + sd + "/images"));
  ExpectAllBlocked(r, "/proc/<pid>/root to the state dir");
}

// Daemon socket class (docker.sock in a container is host root): no branch
// gets an answer from the daemon's socket.
TEST_F(CrossSession, DaemonSocketUnreachableFromABranch) {
  RunOut r = Run(Attack("connect " + daemon_->socket()));
  EXPECT_EQ(r.out.find("INFO connect-reply"), std::string::npos) << "the daemon answered a branch:\n" << r.out;
  EXPECT_TRUE(r.Has("BLOCKED connect-daemon-socket")) << r.out;
}

// The same for a policy that runs as host root (user_namespace = false):
// without the uid mapping the daemon's peer check would see root, so the
// socket itself must be invisible (it is masked like the state dir when it
// lies outside the sandbox's own /run).
TEST_F(CrossSession, DaemonSocketUnreachableFromAHostRootBranch) {
  std::string s = CreateSession("[sandbox]\nuser_namespace = false\n");
  RunOut r = Run(Attack("connect " + daemon_->socket()), s);
  EXPECT_EQ(r.out.find("INFO connect-reply"), std::string::npos) << "the daemon answered a branch:\n" << r.out;
  EXPECT_TRUE(r.Has("BLOCKED connect-daemon-socket")) << r.out;
}

// The overlay never connects to a socket of its lower layer (ECONNREFUSED,
// as above), but a lossy path is a bind of the host's own file: a policy
// whose lossy path is the daemon's socket (or a glob reaching it) would hand
// the branch the daemon. session.create refuses it, as it refuses lossy
// paths into the state dir.
TEST_F(CrossSession, ALossyPathOntoTheDaemonSocketIsRefused) {
  const std::string sock = daemon_->socket();
  const std::string dir = sock.substr(0, sock.rfind('/'));
  for (const std::string& lossy : {sock, dir + "/*.sock"}) {
    std::string path = dir_.path() + "/sock-lossy.toml";
    std::ofstream(path) << "[sandbox]\nuser_namespace = false\n[[filesystem.lossy]]\npath = \"" << lossy
                        << "\"\ntag = \"sock\"\ncompensation = \"none\"\n";
    auto r = Call("session.create", {{"base", "/"}, {"policy", path}});
    ASSERT_FALSE(r.ok()) << lossy << ": a branch would reach the daemon's socket";
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
    EXPECT_NE(r.error().message().find("socket"), std::string::npos) << r.error().ToString();
  }
}

// Network egress class: a host service listening on 127.0.0.1 (the
// metadata/agent sockets of CVE-2020-15157-style attacks, a local database)
// is not reachable: the branch's loopback is its own.
TEST_F(CrossSession, HostLoopbackTcpServiceUnreachable) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  ASSERT_TRUE(s.valid());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(s.get(), 8), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  RunOut r = Run(Attack("connect-tcp 127.0.0.1 " + std::to_string(ntohs(a.sin_port))));
  ExpectAllBlocked(r, "host loopback");
  EXPECT_LT(::accept(s.get(), nullptr, nullptr), 0) << "the host service accepted a connection";
}

// Abstract unix sockets (CVE-2020-15257 containerd-shim: host abstract
// sockets reachable from a container sharing the host's network
// namespace): the branch's namespace has none of the host's.
TEST_F(CrossSession, CVE_2020_15257_HostAbstractSocketUnreachable) {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  ASSERT_TRUE(s.valid());
  std::string name = "specula-sec-" + marker();
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof a.sun_path - 2);
  std::memcpy(a.sun_path + 1, name.data(), n);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(s.get(), 8), 0);
  RunOut r = Run(Attack("connect-abstract " + name.substr(0, n)));
  ExpectAllBlocked(r, "host abstract socket");
  EXPECT_LT(::accept(s.get(), nullptr, nullptr), 0) << "the host socket accepted a connection";
}

}  // namespace
}  // namespace specula::testing
