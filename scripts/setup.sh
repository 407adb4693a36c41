#!/usr/bin/env bash
# specula setup: installs everything the build, the tests and the runtime need
# on a fresh Debian 12 machine. Idempotent; run as root.
#
#  1. Debian 12 packages (compilers, libraries, test and bench tools;
#     btrfs-progs: the store's filesystem is btrfs, whose quotas enforce the
#     policy's per-branch disk limit, docs/checkpoints.md "Disk limits";
#     python3-prometheus-client: the metrics test parses speculad's
#     exposition with it, docs/operations.md).
#  2. The MCP clients the tests drive `specula mcp` with, the
#     Kubernetes manifest validator's packages, and the benchmark peer
#     `srt` (Anthropic's sandbox runtime; all npm, pinned).
#  3. CRIU >= 4.2. Debian 12's criu 3.17 fails on kernels >= 6.13 (vDSO layout
#     change); 4.1 cannot dump a process holding an inet socket on kernels
#     >= 6.16 (getsockopt SO_PASSCRED is refused there: criu issue #2718,
#     fixed in 4.2). If the system has no working CRIU >= 4.2, Debian's newest
#     criu (sid, else Debian 13's) and the libraries it needs (a newer glibc
#     than Debian 12's) are unpacked into a private
#     prefix, /opt/specula/criu, and run through that prefix's own loader. The
#     system's apt configuration, apt state and libc are never touched: apt
#     runs with a private sources list and a private state directory.
#     The one way the code runs CRIU is /opt/specula/criu/bin/criu (a wrapper
#     or a symlink to a system criu that passed `criu check`).
set -euo pipefail

PREFIX=${SPECULA_CRIU_PREFIX:-/opt/specula/criu}
QUIET=${SPECULA_SETUP_QUIET:-0}
log() { echo "setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (it installs packages and creates $PREFIX)" >&2
  exit 1
fi

# SPECULA_SETUP_ONLY_CRIU=1: only the CRIU part (deploy/kubernetes/Dockerfile
# uses it; the image installs its own runtime packages).
if [ "${SPECULA_SETUP_ONLY_CRIU:-0}" != 1 ]; then
PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang llvm lld libclang-rt-14-dev
  libseccomp-dev seccomp libbpf-dev bpftool libelf-dev zlib1g-dev libcap-dev
  libboost-dev libboost-filesystem-dev
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libsqlite3-dev sqlite3
  bubblewrap ripgrep socat slirp4netns iproute2 util-linux procps psmisc file xz-utils
  btrfs-progs e2fsprogs
  python3 python3-prometheus-client libcurl4-openssl-dev
  rsync
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: all present"
fi

# --- MCP clients for the tests -------------------------------------------
# The official MCP TypeScript SDK and the MCP Inspector (tests/mcp drives
# `specula mcp` with them), at the versions pinned by
# tests/mcp/node/package-lock.json, in a private prefix outside the work
# tree. Node >= 18 (Debian 12's nodejs, unless a newer node is installed).
MCP_NODE_DIR=${SPECULA_MCP_NODE_DIR:-/opt/specula/mcp-node}
MCP_PINS="$(dirname "$0")/../tests/mcp/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# npm_pinned WHAT DIR PINS MARKER: `npm ci` the package.json and
# package-lock.json of PINS into DIR, unless DIR already holds that lock and
# MARKER (a file below DIR/node_modules) is there.
npm_pinned() {
  local what=$1 dir=$2 pins=$3 marker=$4
  if cmp -s "$pins/package-lock.json" "$dir/package-lock.json" && [ -f "$dir/node_modules/$marker" ]; then
    log "$what: present in $dir"
    return
  fi
  log "$what: npm ci into $dir"
  mkdir -p "$dir"
  cp "$pins/package.json" "$pins/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}
npm_pinned "MCP clients" "$MCP_NODE_DIR" "$MCP_PINS" "@modelcontextprotocol/sdk/package.json"

# --- Kubernetes manifest validator -------------------------------------
# kubernetes-models (the Kubernetes OpenAPI schemas, compiled) and yaml, at
# the versions pinned by deploy/kubernetes/validate/package-lock.json, for
# scripts/validate-k8s.sh (CTest KubernetesManifestsValidate). Same private
# prefix scheme as the MCP clients.
K8S_VALIDATE_DIR=${SPECULA_K8S_VALIDATE_DIR:-/opt/specula/k8s-validate}
K8S_PINS="$(dirname "$0")/../deploy/kubernetes/validate"
npm_pinned "Kubernetes validator" "$K8S_VALIDATE_DIR" "$K8S_PINS" "kubernetes-models/package.json"

# --- Benchmark peers ---------------------------------------------------
# Anthropic's sandbox runtime (`srt`, pinned by bench/peers/package-lock.json;
# it needs bubblewrap, ripgrep and socat from the list above), which
# sandbox_bench runs side by side with a specula sandbox and bwrap.
PEERS_DIR=${SPECULA_BENCH_PEERS_DIR:-/opt/specula/bench-peers}
npm_pinned "benchmark peers" "$PEERS_DIR" "$(dirname "$0")/../bench/peers" "@anthropic-ai/sandbox-runtime/package.json"
fi  # SPECULA_SETUP_ONLY_CRIU

# --- CRIU ---------------------------------------------------------------
criu_ok() { # $1: criu command; succeeds if version >= 4.2 and `criu check` passes
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^Version: *//p' | head -1) || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  { [ "$major" -gt 4 ] || { [ "$major" -eq 4 ] && [ "$minor" -ge 2 ]; }; } || return 1
  "$1" check >/dev/null 2>&1
}

mkdir -p "$PREFIX/bin"
if [ -x "$PREFIX/bin/criu" ] && criu_ok "$PREFIX/bin/criu"; then
  log "CRIU: $("$PREFIX/bin/criu" --version | head -1) at $PREFIX/bin/criu"
  exit 0
fi

if command -v criu >/dev/null 2>&1 && criu_ok "$(command -v criu)"; then
  ln -sfn "$(command -v criu)" "$PREFIX/bin/criu"
  log "CRIU: using the system's $(command -v criu)"
  exit 0
fi

log "CRIU: installing Debian's criu >= 4.2 into the private prefix $PREFIX"
# The libraries criu needs, by their names in each suite (libnet's soname
# differs). libc6 comes along: criu is linked against that suite's glibc.
COMMON_PKGS=(criu libcompel1 libc6 libbsd0 libmd0 libgnutls30t64
  libnftables1 libnl-3-200 libprotobuf-c1 libuuid1 libidn2-0 libp11-kit0
  libtasn1-6 libunistring5 libnettle8t64 libhogweed6t64 libgmp10 libffi8
  libmnl0 libnftnl11 libxtables12 libjansson4 libedit2 libtinfo6 zlib1g)
APT_DIR="$PREFIX/.apt"
# The same Debian archive the system uses (first non-security URI), read, not changed.
mirror=$( { sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null;
            sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null; } \
          | tr ' ' '\n' | grep -E '^https?://' | grep -v security | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
fetched=""
for suite in sid trixie; do
  case $suite in
    sid) CRIU_PKGS=("${COMMON_PKGS[@]}" libnet9) ;;
    *) CRIU_PKGS=("${COMMON_PKGS[@]}" libnet1) ;;
  esac
  rm -rf "$APT_DIR" && mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} $suite main" \
    > "$APT_DIR/sources.list"
  APT_OPTS=(-o Dir::Etc::sourcelist="$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache="$APT_DIR/cache"
    -o Dir::State::status=/var/lib/dpkg/status -o APT::Get::List-Cleanup=0
    -o APT::Sandbox::User=root)
  apt-get "${APT_OPTS[@]}" update -qq || continue
  v=$(apt-cache "${APT_OPTS[@]}" show criu 2>/dev/null | sed -n 's/^Version: *//p' | head -1)
  case $v in
    4.[2-9]*|4.[1-9][0-9]*|[5-9].*) ;;
    4.1*) log "CRIU: only criu $v found ($suite): it cannot checkpoint inet sockets on kernels >= 6.16" ;;
    *) log "CRIU: $suite has criu '$v', too old; skipped"; continue ;;
  esac
  if (cd "$APT_DIR/debs" && rm -f ./*.deb && apt-get "${APT_OPTS[@]}" download -qq "${CRIU_PKGS[@]}"); then
    fetched=$suite
    log "CRIU: fetched criu $v from $suite"
    break
  fi
done
if [ -z "$fetched" ]; then
  log "CRIU: no Debian suite offered criu >= 4.1 with its libraries; 'specula doctor' will say what is missing"
  exit 1
fi
rm -rf "$PREFIX/root.new" && mkdir -p "$PREFIX/root.new"
for d in "$APT_DIR"/debs/*.deb; do dpkg -x "$d" "$PREFIX/root.new"; done
# Swapped with two renames, so a CRIU run at that moment finds a whole tree.
rm -rf "$PREFIX/root.old"
[ -d "$PREFIX/root" ] && mv "$PREFIX/root" "$PREFIX/root.old"
mv "$PREFIX/root.new" "$PREFIX/root" && rm -rf "$PREFIX/root.old"

cat > "$PREFIX/bin/criu.new" <<WRAP
#!/bin/sh
# Runs Debian's CRIU through its private prefix (written by scripts/setup.sh).
R=$PREFIX/root
exec "\$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$R/usr/lib/x86_64-linux-gnu:\$R/lib/x86_64-linux-gnu" "\$R/usr/sbin/criu" "\$@"
WRAP
chmod 755 "$PREFIX/bin/criu.new" && mv "$PREFIX/bin/criu.new" "$PREFIX/bin/criu"
if criu_ok "$PREFIX/bin/criu"; then
  log "CRIU: $("$PREFIX/bin/criu" --version | head -1) works ($PREFIX/bin/criu)"
else
  log "CRIU: installed at $PREFIX/bin/criu but 'criu check' fails; 'specula doctor' will say why"
  "$PREFIX/bin/criu" check || true
fi
