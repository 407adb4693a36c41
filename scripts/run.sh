#!/usr/bin/env bash
# The main job: the speculative demo. Builds specula (setup first when
# needed), starts a private speculad (host / as the base, target layer: the
# host is never written), and runs `specula bench` on a few of the shipped
# trajectories: each is played with speculation off and on (built-in
# speculator, and the synthetic oracle), and the summary table is printed,
# including the losslessness check against the speculation-off run.
#   SPECULA_DEMO_TRAJECTORIES  space-separated names (default: three short ones)
#   extra arguments go to `specula bench` (e.g. --json, --k 1 --k 2)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${SPECULA_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target specula speculad >/dev/null

"$BUILD/bin/specula" doctor >&2 || true

demo=$(mktemp -d /tmp/specula-demo.XXXXXX)
"$BUILD/bin/speculad" --socket "$demo/speculad.sock" --state-dir "$demo/state" \
  --log-level warn 2>"$demo/speculad.log" &
daemon=$!
cleanup() {
  kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  # The daemon unmounts its store on exit; anything left is detached here.
  grep -o " $demo[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT
for _ in $(seq 100); do
  [ -S "$demo/speculad.sock" ] && break
  sleep 0.1
done
export SPECULA_SOCKET="$demo/speculad.sock"

only=()
for t in ${SPECULA_DEMO_TRAJECTORIES:-logs-auth-failures config-hosts-entries build-c-hello}; do
  only+=(--only "$t")
done
"$BUILD/bin/specula" bench "${only[@]}" "$@"
