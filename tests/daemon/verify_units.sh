#!/bin/sh
# systemd-analyze verify over packaging/speculad.{socket,service}, with
# ExecStart pointed at the built speculad (verify checks it is executable).
# No running systemd is needed. Usage: verify_units.sh SOURCE_DIR SPECULAD
set -eu
src=$1 speculad=$2
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed: skipped"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$src/packaging/speculad.socket" "$dir/"
sed "s|/usr/local/bin/speculad|$speculad|" "$src/packaging/speculad.service" > "$dir/speculad.service"
grep -q '^Type=notify$' "$dir/speculad.service"
grep -q '^Requires=speculad.socket$' "$dir/speculad.service"
grep -q '^ListenStream=/run/specula/speculad.sock$' "$dir/speculad.socket"
# Any complaint (unknown key, bad value, missing unit) fails the test.
out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./speculad.socket ./speculad.service 2>&1) || {
  echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "units verified"
