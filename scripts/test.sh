#!/usr/bin/env bash
# Builds everything (warnings as errors) and runs all tests: unit, integration
# (as root, against the real kernel), end to end, then each libFuzzer target
# for a fixed time. Does the setup first when needed. Run as root.
#   SPECULA_FUZZ_SECONDS   seconds per fuzz target (default 30; 0 skips fuzzing)
#   SPECULA_BUILD_DIR      build directory (default build)
#   SPECULA_DIFF_SEEDS     random sequences the differential test compares (default 24)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${SPECULA_BUILD_DIR:-build}
FUZZ_SECONDS=${SPECULA_FUZZ_SECONDS:-30}
export SPECULA_DIFF_SEEDS=${SPECULA_DIFF_SEEDS:-24}
JOBS=$(nproc)

echo "== build ($BUILD)"
cmake -S . -B "$BUILD" -G Ninja -DSPECULA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS"

echo "== tests"
# Tests that share kernel state (cgroups, the daemon socket dir, BPF) are
# marked RUN_SERIAL in their CMakeLists; the rest run in parallel.
if ! (cd "$BUILD" && ctest --output-on-failure -j "$JOBS" --timeout 900); then
  # The full output of a failed test (a daemon's whole log) scrolls its
  # assertion out of sight: repeat, last, what each failed test asserted and
  # the warnings its daemon logged, so the end of the run says why.
  bash scripts/failure-digest.sh "$BUILD"/Testing/Temporary || true
  exit 8
fi
# The differential test's own count (sequences and commits compared).
grep -h "^differential" "$BUILD"/Testing/Temporary/LastTest.log || true

if [ "$FUZZ_SECONDS" != 0 ]; then
  echo "== fuzz (${FUZZ_SECONDS}s per target)"
  FUZZ_BUILD="$BUILD-fuzz"
  CC=clang CXX=clang++ cmake -S . -B "$FUZZ_BUILD" -G Ninja -DSPECULA_BUILD_FUZZ=ON \
    -DSPECULA_BUILD_TESTS=OFF -DSPECULA_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$FUZZ_BUILD" -j "$JOBS" --target specula_fuzzers
  for f in "$FUZZ_BUILD"/fuzz/*_fuzzer; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus_seed="fuzz/corpus/${name%_fuzzer}"
    work=$(mktemp -d)
    [ -d "$corpus_seed" ] && cp -r "$corpus_seed"/. "$work"/
    echo "-- $name"
    "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$work" 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==)" || true
    "$f" -runs=0 "$work" >/dev/null 2>&1   # replays the corpus; fails on a crash
    rm -rf "$work"
  done
fi
echo "== all tests passed"
