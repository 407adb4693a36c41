// speculad: the specula daemon. Everything lives in the runtime library
// (runtime/service/daemon.cpp) so tests and other mains can reuse it.
#include "runtime/service/daemon.h"

int main(int argc, char** argv) { return specula::service::DaemonMain(argc, argv); }
