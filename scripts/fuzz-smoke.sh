#!/usr/bin/env bash
# Fuzz smoke run: build the cargo-fuzz targets in fuzz/, then run each for FUZZ_SECONDS
# (default 20) from a scratch copy of its checked-in corpus. Exits non-zero if a target
# crashes (the crashing input is left in fuzz/artifacts/<target>/). CI (.ci/run) formats and
# lints the fuzz crate with the same toolchain first.
#
# Toolchain: pinned by fuzz/rust-toolchain.toml (1.95.0, the workspace's stable release), with
# RUSTC_BOOTSTRAP=1 for cargo-fuzz's -Z flags; override with RUSTUP_TOOLCHAIN=... if needed.
# Builds are optimised (-O) with debug assertions and overflow checks on (-a, and the fuzz
# crate's release profile): an integer overflow in a decoder is a crash here, not a wrap.
# Installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${FUZZ_SECONDS:-20}"
TARGETS="${FUZZ_TARGETS:-mptcp_pm_event sock_diag rtnl genl_ctrl netlink_framing config control_request http_request}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
echo "== toolchain: $(rustc --version)"
cargo fuzz build -O -a
failed=()
for t in $TARGETS; do
    # Work on a scratch copy so the checked-in corpus only changes on purpose.
    work="$(mktemp -d)"
    cp -r "corpus/$t/." "$work/"
    echo "== fuzzing $t for ${SECS}s"
    if ! cargo fuzz run -O -a "$t" "$work" -- \
        -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$t")
    fi
    rm -rf "$work"
done
if ((${#failed[@]})); then
    echo "fuzz-smoke: CRASH in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-smoke: no crash in: $TARGETS"
