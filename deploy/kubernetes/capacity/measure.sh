#!/usr/bin/env bash
# Per-node capacity measurement for docs/kubernetes.md: against a running
# speculad (SPECULA_SOCKET), for N in $COUNTS, one session launches N
# branches of $CMD (default `sleep 300`) and, once all run, prints the daemon's RSS (main
# process and its sandbox-watch child), each branch cgroup's memory charge,
# the PSS of the branch's processes and the state dir's disk use (du -x:
# the allocated blocks of the store image layers.img and the database, not
# the overlay mounts of running branches, which du would count as the base).
# Usage (root): measure.sh SPECULA_BIN STATE_DIR POLICY_FILE
# The policy must allow max(COUNTS) concurrent branches and a long timeout.
set -euo pipefail
BIN=$1 STATE=$2 POLICY=$3
COUNTS=${COUNTS:-1 4 8}
CMD=${CMD:-sleep 300}   # must keep running (the branch is measured while it runs)
specula() { "$BIN" "$@"; }
kb() { awk '{printf "%d", $1/1024}'; }
daemon_rss() { # kB, speculad and its children (the sandbox watch)
  local main; main=$(specula --json version | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
  local t=0 p
  for p in $main $(pgrep -P "$main" -x speculad || true); do
    t=$((t + $(awk '/^VmRSS:/{print $2}' /proc/$p/status)))
  done
  echo "$t"
}
mem_cg() { # the memory cgroup of branch $1 (v1 memory controller, else v2)
  local d
  d=$(find /sys/fs/cgroup/memory/specula /sys/fs/cgroup/specula /sys/fs/cgroup/unified/specula \
        -maxdepth 2 -type d -name "specula-$1" 2>/dev/null | head -1)
  echo "$d"
}
echo "idle: daemon_rss_kB=$(daemon_rss) state_du_kB=$(du -skx "$STATE" | cut -f1)"
for n in $COUNTS; do
  S=$(specula --json session create --policy "$POLICY" --name "cap-$n" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p')
  du0=$(du -skx "$STATE" | cut -f1)
  bs=()
  for i in $(seq 1 "$n"); do bs+=("$(specula spec "$S" -- "$CMD #$i")"); done
  for _ in $(seq 1 60); do  # until every branch runs its sleep
    r=$(specula branches "$S" | grep -c ' running ' || true)
    [ "$r" -ge "$n" ] && break; sleep 0.5
  done
  sleep 2
  tot_cg=0 tot_pss=0
  for b in "${bs[@]}"; do
    cg=$(mem_cg "$b")
    if [ -f "$cg/memory.usage_in_bytes" ]; then u=$(kb < "$cg/memory.usage_in_bytes"); else u=$(kb < "$cg/memory.current"); fi
    pss=0
    for p in $(cat "$cg/cgroup.procs"); do
      pss=$((pss + $(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)))
    done
    # The branch's upper dir (its writes) on the store; btrfs counts
    # delayed-allocation bytes in st_blocks, so this is current even before
    # the store's image file has its blocks.
    up=$(du -skx "$STATE/fs/branches/$b/vol/upper" 2>/dev/null | cut -f1)
    echo "  n=$n branch=$b cgroup_kB=$u pss_kB=$pss procs=$(wc -l < "$cg/cgroup.procs") upper_kB=${up:-?}"
    tot_cg=$((tot_cg + u)) tot_pss=$((tot_pss + pss))
  done
  # Flush the store first: the image file (layers.img) gets its blocks only
  # when btrfs writes back, so a du before that misses fresh writes.
  sync -f "$STATE/fs" 2>/dev/null || sync
  du1=$(du -skx "$STATE" | cut -f1)
  echo "n=$n running=$r daemon_rss_kB=$(daemon_rss) branches_cgroup_kB=$tot_cg branches_pss_kB=$tot_pss" \
       "per_branch_cgroup_kB=$((tot_cg / n)) per_branch_pss_kB=$((tot_pss / n))" \
       "state_du_kB_before=$du0 after=$du1 per_branch_disk_kB=$(((du1 - du0) / n))"
  specula abort "$S" >/dev/null
  specula session rm "$S" >/dev/null
done
# Idle sessions: what a session costs with no branch (daemon RSS, disk).
COUNT_SESSIONS=${COUNT_SESSIONS:-20}
r0=$(daemon_rss) d0=$(du -skx "$STATE" | cut -f1) ss=()
for i in $(seq 1 "$COUNT_SESSIONS"); do
  ss+=("$(specula --json session create --policy "$POLICY" --name "idle-$i" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p')")
done
r1=$(daemon_rss) d1=$(du -skx "$STATE" | cut -f1)
echo "sessions=$COUNT_SESSIONS daemon_rss_kB_before=$r0 after=$r1 state_du_kB_before=$d0 after=$d1"
for s in "${ss[@]}"; do specula session rm "$s" >/dev/null; done
echo "after cleanup: daemon_rss_kB=$(daemon_rss) state_du_kB=$(du -skx "$STATE" | cut -f1)"
