#!/usr/bin/env bash
# Issue 17's package test, on this machine, as root: build the .deb from the
# build tree (cpack), install it with apt-get, check its files (binaries,
# conffiles, units, sysusers, docs), start the daemon (systemctl when systemd
# is PID 1, else the unit's own ExecStart by hand), run a session through the
# installed CLI with a policy found by name in /etc/specula/policies, stop
# it, purge the package, and check that nothing is left: no file the package
# listed, no state or runtime dir, no process, mount, cgroup or loop device,
# and the `specula` group and /opt/specula/criu as they were before.
#   deb_package_test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
fail() { echo "deb_package_test: FAIL: $*" >&2; exit 1; }
log() { echo "deb_package_test: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs a package)"
if dpkg-query -W -f='${Status}' specula 2>/dev/null | grep -q installed; then
  fail "a specula package is already installed; purge it first (apt-get purge specula)"
fi
for d in /etc/specula /var/lib/specula /var/lib/specula-deb; do
  [ ! -e "$d" ] || fail "$d exists before the install; this test would remove it on purge"
done
pgrep -x speculad >/dev/null && fail "a speculad is running; stop it first"

WORK=$(mktemp -d /tmp/specula-deb-test-XXXXXX)
chmod 755 "$WORK"   # apt's _apt user reads the .deb from here
DAEMON_PID=""
cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  if dpkg-query -W -f='${Status}' specula 2>/dev/null | grep -q installed; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq specula >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

group_before=$(getent group specula || true)
criu_before=$( [ -e /opt/specula/criu ] && echo present || echo absent )
cgroups_before=$(find /sys/fs/cgroup -path '*specula*' -type d 2>/dev/null | sort)
loops_before=$(losetup -a | sort)

log "building the package (cpack)"
(cd "$WORK" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1) ||
  { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
DEB=$(ls "$WORK"/out/specula_*.deb)
log "built $(basename "$DEB") ($(du -h "$DEB" | cut -f1))"

# The package's metadata.
dpkg-deb -f "$DEB" Package | grep -qx specula || fail "Package field"
dpkg-deb -f "$DEB" Depends | grep -q "libc6" || fail "no shlibdeps in Depends: $(dpkg-deb -f "$DEB" Depends)"
dpkg-deb -f "$DEB" Depends | grep -q "btrfs-progs" || fail "btrfs-progs missing from Depends"
mkdir "$WORK/ctl" && dpkg-deb -e "$DEB" "$WORK/ctl"
for f in /etc/specula/policies/default.toml /etc/specula/policies/sysadmin.toml /etc/specula/policies/kernel-tuning.toml; do
  grep -qx "$f" "$WORK/ctl/conffiles" || fail "$f is not a conffile"
done
for s in postinst prerm postrm; do [ -x "$WORK/ctl/$s" ] || fail "no $s"; done
listing=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/speculad ./usr/bin/specula ./usr/lib/systemd/system/speculad.service \
         ./usr/lib/systemd/system/speculad.socket ./usr/lib/sysusers.d/specula.conf \
         ./usr/lib/specula/setup.sh ./usr/share/doc/specula/operations.md; do
  grep -qx "$f" <<<"$listing" || fail "$f not in the package"
done
grep -q '^./usr/share/specula/' <<<"$listing" && fail "the package carries a second copy of the policies in /usr/share"
grep -q '^./usr/local' <<<"$listing" && fail "the package installs into /usr/local"

log "installing with apt-get"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$DEB" >"$WORK/apt.log" 2>&1 ||
  { cat "$WORK/apt.log" >&2; fail "apt-get install failed"; }
dpkg -L specula | sort >"$WORK/files"
getent group specula >/dev/null || fail "postinst did not create the specula group"
grep -q '^ExecStart=/usr/bin/speculad ' /usr/lib/systemd/system/speculad.service || fail "unit's ExecStart is not /usr/bin/speculad"
/usr/bin/specula --help >/dev/null || fail "specula --help"
/usr/bin/specula mcp --help >/dev/null || fail "specula mcp --help"

SOCK=/run/specula/speculad.sock
if [ -d /run/systemd/system ]; then
  log "starting through systemd (speculad.socket)"
  systemctl is-enabled speculad.socket >/dev/null || fail "postinst did not enable speculad.socket"
  systemctl start speculad.socket
else
  # No systemd here: the unit's ExecStart, as the unit would run it
  # (RuntimeDirectory and StateDirectory made first, as systemd would).
  exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/speculad.service)
  log "no systemd as PID 1: running the unit's ExecStart by hand: $exec_start"
  install -d -m 0755 /run/specula
  install -d -m 0700 /var/lib/specula
  read -r -a argv <<<"$exec_start"
  "${argv[@]}" >"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.1; done
  [ -S "$SOCK" ] || { cat "$WORK/daemon.log" >&2; fail "the daemon did not create $SOCK"; }
fi

log "a session through the installed CLI"
S=$(/usr/bin/specula --socket "$SOCK" --json session create --policy sysadmin | sed -n 's/.*"session" *: *"\([^"]*\)".*/\1/p')
[ -n "$S" ] || fail "session create failed"
out=$(/usr/bin/specula --socket "$SOCK" run "$S" -- 'echo from-the-package; cat /etc/hostname >/dev/null')
[ "$out" = from-the-package ] || fail "run printed '$out'"
/usr/bin/specula --socket "$SOCK" session rm "$S" >/dev/null || fail "session rm"

log "purging (prerm stops the daemon)"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq specula >"$WORK/purge.log" 2>&1 ||
  { cat "$WORK/purge.log" >&2; fail "apt-get purge failed"; }
if [ -n "$DAEMON_PID" ]; then
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
fi

log "checking for leftovers"
dpkg-query -W -f='${Status}' specula 2>/dev/null | grep -q "installed" && fail "still installed"
while read -r f; do
  [ -d "$f" ] && [ ! -L "$f" ] && continue   # shared directories (/usr/bin, ...) stay
  [ ! -e "$f" ] || fail "left behind: $f"
done <"$WORK/files"
for d in /etc/specula /var/lib/specula /var/lib/specula-deb /run/specula /usr/lib/specula /usr/share/doc/specula; do
  [ ! -e "$d" ] || fail "left behind: $d"
done
# The sandbox watch (sandbox/sandbox_watch.h) removes the daemon's cgroup
# subtree once the daemon is gone: give it a moment.
for _ in $(seq 1 100); do
  pgrep -x speculad-watch >/dev/null || [ "$(find /sys/fs/cgroup -path '*specula*' -type d 2>/dev/null | sort)" != "$cgroups_before" ] || break
  sleep 0.1
done
pgrep -x speculad >/dev/null && fail "a speculad process is left"
pgrep -x speculad-watch >/dev/null && fail "the sandbox watch is left"
grep -q '/var/lib/specula' /proc/self/mountinfo && fail "a mount under /var/lib/specula is left"
[ "$(find /sys/fs/cgroup -path '*specula*' -type d 2>/dev/null | sort)" = "$cgroups_before" ] ||
  fail "cgroup directories differ from before the install"
[ "$(losetup -a | sort)" = "$loops_before" ] || fail "loop devices differ from before the install"
[ "$(getent group specula || true)" = "$group_before" ] || fail "the specula group is not as before"
[ "$( [ -e /opt/specula/criu ] && echo present || echo absent )" = "$criu_before" ] ||
  fail "/opt/specula/criu is not as before"
log "OK: built, installed, ran a session, purged, nothing left"
