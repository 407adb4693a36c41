// A server an action leaves running survives the checkpoint: the next
// commit restores it with CRIU and talks to it over the sandbox's loopback,
// and the server's own state (a connection counter) carries on. Needs a CRIU
// that can dump inet sockets on this kernel (>= 4.2 on kernels >= 6.16,
// criu issue #2718; scripts/setup.sh installs one).
#include <fstream>

#include "tests/runtime_core/core_test_util.h"

namespace specula::core::testing {
namespace {

class LiveSocketTest : public CoreFixture {};

TEST_F(LiveSocketTest, ListeningServerIsCheckpointedAndRestored) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  // On the host under the test dir, which the sandbox sees through its
  // lower layer (the base is /).
  const std::string server = dir_ + "/server.py";
  std::ofstream(server) << "import socket\n"
                           "s = socket.socket()\n"
                           "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                           "s.bind(('127.0.0.1', 8765))\n"
                           "s.listen()\n"
                           "open('/tmp/server-ready', 'w').close()\n"
                           "n = 0\n"
                           "while True:\n"
                           "    c, _ = s.accept()\n"
                           "    n += 1\n"
                           "    c.sendall(b'hello %d\\n' % n)\n"
                           "    c.close()\n";
  std::string s = NewSession();
  auto start = MustCommit(s, "python3 " + server +
                                 " </dev/null >/dev/null 2>&1 & "
                                 "for i in $(seq 200); do [ -e /tmp/server-ready ] && break; sleep 0.05; done; "
                                 "test -e /tmp/server-ready");
  ASSERT_EQ(start.exit_code, 0) << start.stderr_data;
  auto head = mgr_->ShowCheckpoint(start.head);
  ASSERT_TRUE(head.ok()) << head.error().ToString();
  EXPECT_TRUE(head->has_process_image) << "the server was not checkpointed";
  const std::string client =
      "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', 8765), timeout=5); "
      "print(s.recv(100).decode(), end='')\"";
  auto one = MustCommit(s, client);
  EXPECT_EQ(one.exit_code, 0) << one.stderr_data;
  EXPECT_EQ(one.stdout_data, "hello 1\n");
  // Restored again from the checkpoint taken after the first client: the
  // counter the server kept in memory goes on.
  auto two = MustCommit(s, client);
  EXPECT_EQ(two.exit_code, 0) << two.stderr_data;
  EXPECT_EQ(two.stdout_data, "hello 2\n");
}

}  // namespace
}  // namespace specula::core::testing
