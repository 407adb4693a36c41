#!/usr/bin/env bash
# A fuzzing campaign (issue 16): runs each libFuzzer target for a number of
# executions (or seconds) on the persistent corpus in fuzz/corpus/<target>,
# then merges what it found back into that corpus, minimised, so CI replays
# it (scripts/test.sh runs every target on its corpus). Prints one line of
# figures per target; exits non-zero on the first crash, leaving the crash
# input (crash-*) in the current directory. libFuzzer's other artifacts
# (slow-unit-*, written when a run is paused or the box is loaded) go to a
# temporary directory and are dropped, so they never land in the tree. Ctrl-C ends the running target
# early and still merges what it found.
#
# Usage: scripts/fuzz-campaign.sh [--runs N | --seconds S] [TARGET...]
#   default --runs 10000000, every target built in build-fuzz/fuzz/.
# Build first: CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
#   -DSPECULA_BUILD_FUZZ=ON -DSPECULA_BUILD_TESTS=OFF -DSPECULA_BUILD_BENCH=OFF \
#   && cmake --build build-fuzz --target specula_fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_BUILD="${FUZZ_BUILD:-build-fuzz}"
limit=(-runs=10000000)
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) limit=(-runs="$2"); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in "$FUZZ_BUILD"/fuzz/*_fuzzer; do [[ -x "$f" ]] && targets+=("$(basename "$f" _fuzzer)"); done
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz-campaign: no fuzzers in $FUZZ_BUILD/fuzz (see --help)" >&2; exit 2; }
for t in "${targets[@]}"; do
  bin="$FUZZ_BUILD/fuzz/${t}_fuzzer"
  [[ -x "$bin" ]] || { echo "fuzz-campaign: $bin not built" >&2; exit 2; }
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/
  start=$(date +%s)
  log=$(mktemp)
  artifacts=$(mktemp -d)
  # Ctrl-C (SIGINT) stops a campaign early: libFuzzer exits with
  # -interrupted_exitcode (72) and what it found is still merged below.
  rc=0
  "$bin" "${limit[@]}" -print_final_stats=1 -rss_limit_mb=2048 -interrupted_exitcode=72 \
    -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1 || rc=$?
  stopped=""
  if [[ $rc -eq 72 ]]; then
    stopped=" (interrupted)"
  elif [[ $rc -ne 0 ]]; then
    tail -40 "$log" >&2
    cp "$artifacts"/crash-* . 2>/dev/null || true
    rm -rf "$work" "$log" "$artifacts"
    echo "fuzz-campaign: $t crashed (input above / crash-* here)" >&2
    exit 1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(grep -Eo '^stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}')
  # Minimise: the new corpus holds only inputs that add coverage.
  merged=$(mktemp -d)
  "$bin" -merge=1 "$merged" "$corpus" "$work" >/dev/null 2>&1
  before=$(find "$corpus" -type f | wc -l)
  rm -rf "$corpus" && mkdir -p "$corpus" && cp -r "$merged"/. "$corpus"/
  after=$(find "$corpus" -type f | wc -l)
  printf '%-8s %12s execs in %6ss%s  crashes 0  corpus %s -> %s files (%s)\n' \
    "$t" "${execs:-?}" "$secs" "$stopped" "$before" "$after" "$(du -sh "$corpus" | cut -f1)"
  rm -rf "$work" "$merged" "$log" "$artifacts"
done
