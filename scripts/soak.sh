#!/usr/bin/env bash
# The full soak of issue 16: 8 sessions x 1,000 actions x k = 3 through a
# real speculad (tests/soak/soak_test.cpp), then nothing left behind.
# Prints the figures (hits, misses, daemon fds and RSS before and after).
# Usage: scripts/soak.sh [BUILD_DIR]   (env SPECULA_SOAK_* overrides the size)
# Runs as root; about six minutes on the 2-core VM (2026-12-07).
set -euo pipefail
BUILD="${1:-build}"
BIN="$BUILD/tests/soak/soak_test"
[[ -x "$BIN" ]] || { echo "soak.sh: $BIN not built (cmake --build $BUILD --target soak_test)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "soak.sh: run as root (the daemon needs it)" >&2; exit 2; }
export SPECULA_SOAK_SESSIONS="${SPECULA_SOAK_SESSIONS:-8}"
export SPECULA_SOAK_ACTIONS="${SPECULA_SOAK_ACTIONS:-1000}"
export SPECULA_SOAK_K="${SPECULA_SOAK_K:-3}"
echo "soak: $SPECULA_SOAK_SESSIONS sessions x $SPECULA_SOAK_ACTIONS actions x k=$SPECULA_SOAK_K"
exec "$BIN" --gtest_brief=1
