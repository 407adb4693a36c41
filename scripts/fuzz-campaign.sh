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
# Usage: scripts/fuzz-campaign.sh [--runs N | --seconds S] [--jobs J] [TARGET...]
#   default --runs 10000000, every target built in build-fuzz/fuzz/.
#   --jobs J runs J processes of each target side by side (each on its own
#   copy of the corpus, N/J runs each) and merges their finds once; the
#   execution count printed is their sum. Named seeds (files whose name is
#   not a SHA-1) stay in the corpus whatever the merge keeps.
# Build first: CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
#   -DSPECULA_BUILD_FUZZ=ON -DSPECULA_BUILD_TESTS=OFF -DSPECULA_BUILD_BENCH=OFF \
#   && cmake --build build-fuzz --target specula_fuzzers
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_BUILD="${FUZZ_BUILD:-build-fuzz}"
limit=(-runs=10000000)
jobs=1
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) limit=(-runs="$2"); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
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
  [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz-campaign: --jobs wants a positive number" >&2; exit 2; }
  run_limit=("${limit[@]}")
  if [[ "${limit[0]}" == -runs=* && "$jobs" -gt 1 ]]; then
    run_limit=(-runs=$(( ${limit[0]#-runs=} / jobs )))
  fi
  works=() logs=() pids=()
  artifacts=$(mktemp -d)
  for ((j = 0; j < jobs; j++)); do
    works+=("$(mktemp -d)")
    logs+=("$(mktemp)")
    cp -r "$corpus"/. "${works[j]}"/
  done
  start=$(date +%s)
  # Ctrl-C (SIGINT) stops a campaign early: each libFuzzer exits with
  # -interrupted_exitcode (72) and what they found is still merged below.
  trap 'kill -INT "${pids[@]}" 2>/dev/null || true' INT
  for ((j = 0; j < jobs; j++)); do
    "$bin" "${run_limit[@]}" -print_final_stats=1 -rss_limit_mb=2048 -interrupted_exitcode=72 \
      -artifact_prefix="$artifacts/" "${works[j]}" >"${logs[j]}" 2>&1 &
    pids+=($!)
  done
  stopped="" crashed=""
  for ((j = 0; j < jobs; j++)); do
    rc=0
    while :; do
      wait "${pids[j]}" && rc=0 || rc=$?
      # A wait cut short by the trapped SIGINT returns > 128: wait again.
      kill -0 "${pids[j]}" 2>/dev/null || break
    done
    if [[ $rc -eq 72 ]]; then
      stopped=" (interrupted)"
    elif [[ $rc -ne 0 ]]; then
      crashed="${logs[j]}"
    fi
  done
  trap - INT
  if [[ -n "$crashed" ]]; then
    kill -INT "${pids[@]}" 2>/dev/null || true
    wait || true
    tail -40 "$crashed" >&2
    cp "$artifacts"/crash-* . 2>/dev/null || true
    rm -rf "${works[@]}" "${logs[@]}" "$artifacts"
    echo "fuzz-campaign: $t crashed (input above / crash-* here)" >&2
    exit 1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(cat "${logs[@]}" | grep -Eo '^stat::number_of_executed_units: [0-9]+' | awk '{s += $2} END {print s}')
  # Minimise: the new corpus holds only inputs that add coverage, plus the
  # named seeds (hand-written examples docs and tests point to).
  merged=$(mktemp -d)
  "$bin" -merge=1 "$merged" "$corpus" "${works[@]}" >/dev/null 2>&1
  for f in "$corpus"/*; do
    [[ -f "$f" && ! "$(basename "$f")" =~ ^[0-9a-f]{40}$ ]] && cp -p "$f" "$merged"/
  done
  before=$(find "$corpus" -type f | wc -l)
  rm -rf "$corpus" && mkdir -p "$corpus" && cp -r "$merged"/. "$corpus"/
  after=$(find "$corpus" -type f | wc -l)
  printf '%-8s %12s execs in %6ss%s  crashes 0  corpus %s -> %s files (%s)\n' \
    "$t" "${execs:-?}" "$secs" "$stopped" "$before" "$after" "$(du -sh "$corpus" | cut -f1)"
  rm -rf "${works[@]}" "$merged" "${logs[@]}" "$artifacts"
done
