#!/usr/bin/env bash
# Fuzz smoke run: build the cargo-fuzz targets in fuzz/ and run each for FUZZ_SECONDS (default
# 20) from its checked-in corpus. Exits non-zero if any target crashes (the crashing input is
# left in fuzz/artifacts/<target>/). Needs a nightly toolchain; installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${FUZZ_SECONDS:-20}"
TARGETS="${FUZZ_TARGETS:-mptcp_pm_event sock_diag config http_request}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
cargo "+$TOOLCHAIN" fuzz build -O
failed=()
for t in $TARGETS; do
    # Work on a scratch copy so the checked-in corpus only changes on purpose.
    work="$(mktemp -d)"
    cp -r "corpus/$t/." "$work/"
    echo "== fuzzing $t for ${SECS}s"
    if ! cargo "+$TOOLCHAIN" fuzz run -O "$t" "$work" -- \
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
