#!/bin/sh
# Build a static, stripped mptcp-pmd for x86_64 Linux (musl): no libc needed on the target.
# Usage: packaging/build-static.sh [OUT]   (OUT defaults to target/x86_64-unknown-linux-musl/release/mptcp-pmd)
# Needs: rustup target add x86_64-unknown-linux-musl (pure Rust dependency tree: no C compiler).
set -eu
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
cargo build --locked --release --target "$TARGET" -p mptcp-pmd
BIN="${CARGO_TARGET_DIR:-target}/$TARGET/release/mptcp-pmd"
# Static check: no program interpreter, no dynamic section.
if command -v readelf >/dev/null 2>&1; then
    if readelf -l "$BIN" | grep -q 'INTERP' || readelf -d "$BIN" 2>/dev/null | grep -q 'NEEDED'; then
        echo "error: $BIN is not statically linked" >&2
        exit 1
    fi
fi
"$BIN" --version >/dev/null
if [ $# -ge 1 ]; then cp "$BIN" "$1"; BIN="$1"; fi
echo "$BIN: $(stat -c %s "$BIN") bytes (static, stripped)"
