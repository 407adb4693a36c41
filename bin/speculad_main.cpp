// speculad: the specula daemon. Everything lives in specula_service
// (runtime/service/daemon.cpp).
#include "runtime/service/daemon.h"

int main(int argc, char** argv) { return specula::service::DaemonMain(argc, argv); }
