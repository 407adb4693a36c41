#!/usr/bin/env bash
# The main job: builds specula (setup first when needed) and runs it.
# For now this is `specula doctor`, which says what this machine's kernel
# allows; the speculative demo replaces it once the agents engine lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${SPECULA_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target specula speculad >/dev/null
exec "$BUILD/runtime/specula" doctor "$@"
