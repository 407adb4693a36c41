// speculad's main, as a library function so bin/speculad_main.cpp
// stays a one-liner: parse flags, lock the state dir, recover sessions
// (before accepting anyone), serve until SIGTERM.
#pragma once

namespace specula::service {

// Exit status: 0 after a clean SIGTERM shutdown, 2 for bad flags or a bad
// socket-activation / NOTIFY_SOCKET environment (rpc/systemd.h), 69 when it
// cannot serve (socket taken, state dir locked by another speculad), 1 for
// other failures.
int DaemonMain(int argc, char** argv);

}  // namespace specula::service
