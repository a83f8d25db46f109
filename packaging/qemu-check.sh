#!/usr/bin/env bash
# The aarch64 build under qemu-user (Debian's qemu-user), as CI runs it (as root):
#  1. the pure test suites (policies, config, the netlink codecs on their captured fixtures)
#     built for aarch64-unknown-linux-musl and run under qemu-aarch64;
#  2. the aarch64 static binary (packaging/build-static.sh --target aarch64-unknown-linux-musl
#     first): --version, --check-config of the shipped config, completions, man page;
#  3. in a throwaway network namespace: examples/netlink-probe (a real rtnetlink dump through
#     the crate's socket; whether sock_diag and generic netlink open), then the aarch64
#     binary's `status --json` client against an x86_64 daemon, then the aarch64 daemon itself
#     (which stops at the generic netlink socket: qemu-user refuses that protocol).
# What qemu lets through is in docs/OPERATIONS.md ("ARM builds under qemu-user").
set -euo pipefail
cd "$(dirname "$0")/.."
T=aarch64-unknown-linux-musl
TD="${CARGO_TARGET_DIR:-target}"
command -v qemu-aarch64 >/dev/null 2>&1 || {
    echo "qemu-check.sh: qemu-aarch64 is missing (Debian package: qemu-user)" >&2
    exit 1
}
qemu-aarch64 --version | head -1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64

echo "== 1. pure test suites under qemu-aarch64"
cargo test --locked --target "$T" -p mptcp-pmd-policies -p mptcp-pmd-config -p mptcp-pmd-netlink

echo "== 2. the aarch64 static binary"
BIN="$TD/$T/release/mptcp-pmd"
[ -x "$BIN" ] || { echo "qemu-check.sh: $BIN missing: run packaging/build-static.sh --target $T" >&2; exit 1; }
v=$(qemu-aarch64 "$BIN" --version)
echo "$v"
case "$v" in *", $T)") ;; *) echo "qemu-check.sh: --version does not name $T" >&2; exit 1 ;; esac
qemu-aarch64 "$BIN" --check-config -c packaging/mptcp-pm.yaml >/dev/null
qemu-aarch64 "$BIN" completions bash | grep -c 'complete -F' >/dev/null
qemu-aarch64 "$BIN" manpage | grep -c '^\.TH mptcp-pmd 1' >/dev/null
echo "--version, --check-config, completions, manpage: ok"

echo "== 3. netlink under qemu-aarch64, in a throwaway namespace"
cargo build --locked --target "$T" -p integration --example netlink-probe
NS="mpt-$$-0-qemu"
DIR=$(mktemp -d)
HOSTPMD=""
cleanup() {
    [ -n "$HOSTPMD" ] && kill "$HOSTPMD" 2>/dev/null && wait "$HOSTPMD" 2>/dev/null
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add d0 type veth peer name d1
ip -n "$NS" addr add 198.18.0.2/24 dev d0
ip -n "$NS" link set d0 up
ip -n "$NS" link set d1 up
ip netns exec "$NS" qemu-aarch64 "$TD/$T/debug/examples/netlink-probe"

# The aarch64 client against a daemon of the host's architecture (AF_UNIX passes qemu).
HOST_BIN="$TD/x86_64-unknown-linux-musl/release/mptcp-pmd"
[ "$(uname -m)" = x86_64 ] && [ -x "$HOST_BIN" ] || HOST_BIN="$TD/release/mptcp-pmd"
[ -x "$HOST_BIN" ] || cargo build --locked --release -p mptcp-pmd
printf 'policy: fullmesh\ncontrol:\n  socket: %s/ctl.sock\n' "$DIR" >"$DIR/cfg.yaml"
ip netns exec "$NS" "$HOST_BIN" -c "$DIR/cfg.yaml" >"$DIR/host.log" 2>&1 &
HOSTPMD=$!
for _ in $(seq 100); do grep -q started "$DIR/host.log" && break; sleep 0.1; done
grep -q started "$DIR/host.log" || { cat "$DIR/host.log"; exit 1; }
qemu-aarch64 "$BIN" addresses --json -s "$DIR/ctl.sock" >"$DIR/addr.json"
head -20 "$DIR/addr.json"
sed -n '/"usable"/,/"skipped"/p' "$DIR/addr.json" | grep -c '"198.18.0.2"' >/dev/null || {
    echo "qemu-check.sh: the aarch64 client did not list 198.18.0.2 as usable" >&2
    exit 1
}
echo "aarch64 client against the $(uname -m) daemon: ok"
kill "$HOSTPMD"; wait "$HOSTPMD" || true; HOSTPMD=""

# The aarch64 daemon itself: expected to stop at the generic netlink socket under qemu-user.
printf 'policy: fullmesh\ncontrol:\n  socket: %s/ctl2.sock\n' "$DIR" >"$DIR/cfg2.yaml"
rc=0
timeout 30 ip netns exec "$NS" qemu-aarch64 "$BIN" -c "$DIR/cfg2.yaml" >"$DIR/q.log" 2>&1 || rc=$?
echo "aarch64 daemon under qemu-aarch64: exit $rc: $(grep CRIT "$DIR/q.log" | head -1)"
