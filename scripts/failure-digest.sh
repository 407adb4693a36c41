#!/usr/bin/env bash
# Prints, for each test ctest recorded as failed, its gtest assertion
# messages and the warnings and errors its daemon logged, a bounded number
# of lines each: the end of a CI log is often all a reader gets.
# Usage: scripts/failure-digest.sh BUILD/Testing/Temporary
set -uo pipefail
dir=${1:?usage: failure-digest.sh BUILD/Testing/Temporary}
failed="$dir/LastTestsFailed.log"
log="$dir/LastTest.log"
[[ -f "$failed" && -f "$log" ]] || { echo "failure-digest: no ctest logs in $dir" >&2; exit 2; }
echo "== failure digest"
while IFS=: read -r num name; do
  [[ -n "$name" ]] || continue
  echo "-- $name"
  # The test's section of LastTest.log: from its "N/M Testing:" line to its
  # "end time" line.
  awk -v n="$num" -v t="$name" '
    index($0, n "/") == 1 && index($0, "Testing: " t) { on = 1 }
    on { print }
    on && index($0, "\"" t "\" end time:") { exit }
  ' "$log" >"$dir/digest.section" || true
  grep -n -A12 -E ": Failure$|^\[  FAILED  \]|Expected|Value of:|Which is:" "$dir/digest.section" |
    grep -v -- "---- speculad log" | head -80
  echo "   (daemon warnings and errors, last 25)"
  grep -E "^[0-9]{4}-[0-9-]+T[0-9:.]+ (warning|error|critical) " "$dir/digest.section" | tail -25
done <"$failed"
rm -f "$dir/digest.section"
