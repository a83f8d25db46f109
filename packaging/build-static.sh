#!/usr/bin/env bash
# Static, stripped mptcp-pmd binaries (musl): no libc needed on the target, one file per
# architecture for an appliance image.
#
# Usage: packaging/build-static.sh [--target TRIPLE]... [--all] [--out DIR] [OUT]
#   --target TRIPLE  x86_64-unknown-linux-musl (the default), aarch64-unknown-linux-musl or
#                    armv7-unknown-linux-musleabihf; repeat it for several
#   --all            the three of them
#   --out DIR        also copy each binary to DIR/mptcp-pmd-TRIPLE
#   OUT              (one target only) copy the binary to this file
# Each binary is left in ${CARGO_TARGET_DIR:-target}/TRIPLE/release/mptcp-pmd, checked to be
# static, stripped and <= 6 MB (6 000 000 bytes), and its --version is run (under qemu-user for
# the ARM ones). Details and the reasons for each step: docs/OPERATIONS.md ("Static binaries").
#
# Linker: the Rust toolchain's own rust-lld with the musl start files and libc that the rustup
# target ships; no C compiler and no downloaded toolchain binary. When rustup cannot fetch the
# armv7 target (this project's CI mirror has no rust-std for it), the standard library is built
# from rust-src instead and linked against Debian's musl for armhf (package musl-dev:armhf, whose
# arm-linux-musleabihf-gcc wraps Debian's cross gcc), with LLVM's libunwind (from rust-src)
# compiled by Debian's g++-arm-linux-gnueabihf.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/targets.sh

MAX_BYTES=6000000
ALL=("${STATIC_TARGETS[@]}")
targets=()
out_dir=""
out_file=""
while [ $# -gt 0 ]; do
    case "$1" in
        --target) targets+=("${2:?--target needs a triple}"); shift 2 ;;
        --target=*) targets+=("${1#--target=}"); shift ;;
        --all) targets+=("${ALL[@]}"); shift ;;
        --out) out_dir="${2:?--out needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "build-static.sh: unknown option $1" >&2; exit 64 ;;
        *) out_file="$1"; shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl)
if [ -n "$out_file" ] && [ ${#targets[@]} -ne 1 ]; then
    echo "build-static.sh: OUT is for one target; use --out DIR for several" >&2
    exit 64
fi
TD="${CARGO_TARGET_DIR:-target}"

die() { echo "build-static.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing (Debian package: $2)"; }

# The prebuilt standard library of TRIPLE, installed by rustup if it can fetch it.
have_std() {
    rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
    rustup target add "$1" >/dev/null 2>&1
}

# For one musl triple: the `cargo:linker` setting, as cargo's environment variable name.
var() { echo "CARGO_TARGET_$(echo "$1" | tr 'a-z-' 'A-Z_')_$2"; }

build_prebuilt_std() {
    local t="$1"
    env "$(var "$t" LINKER)=rust-lld" \
        cargo build --locked --release --target "$t" -p mptcp-pmd
}

# armv7 without a prebuilt std: std from rust-src (-Z build-std; RUSTC_BOOTSTRAP lets the same
# stable compiler as the other two targets do it), Debian's musl for armhf, our own libunwind.a.
build_armv7_from_source() {
    local t=armv7-unknown-linux-musleabihf
    echo "build-static.sh: no prebuilt rust-std for $t from rustup; building std from rust-src"
    need arm-linux-musleabihf-gcc "musl-dev:armhf (dpkg --add-architecture armhf)"
    need arm-linux-gnueabihf-g++ g++-arm-linux-gnueabihf
    need arm-linux-gnueabihf-ar binutils-arm-linux-gnueabihf
    rustup component list --installed 2>/dev/null | grep -q '^rust-src' ||
        rustup component add rust-src || die "rustup cannot add rust-src"
    local src uw
    src="$(rustc --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind"
    [ -d "$src/src" ] || die "$src missing (rust-src without libunwind)"
    # std's unwind crate links a static libunwind on musl: build LLVM's, as Rust's own musl
    # targets ship it, with the flags Rust's bootstrap uses (C++ without the C++ library).
    uw="$TD/$t/libunwind"
    mkdir -p "$uw"
    local flags=(-O2 -fPIC -funwind-tables -fstrict-aliasing -fvisibility=hidden
        -D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -DNDEBUG -I"$src/include")
    local objs=() f o
    for f in libunwind.cpp Unwind-EHABI.cpp; do
        o="$uw/${f%.*}.o"
        REALGCC=arm-linux-gnueabihf-g++ arm-linux-musleabihf-gcc -x c++ -std=c++17 \
            -fno-exceptions -fno-rtti -nostdinc++ "${flags[@]}" -c "$src/src/$f" -o "$o"
        objs+=("$o")
    done
    for f in UnwindLevel1.c UnwindLevel1-gcc-ext.c Unwind-sjlj.c \
        UnwindRegistersRestore.S UnwindRegistersSave.S; do
        o="$uw/${f%.*}.o"
        arm-linux-musleabihf-gcc -std=c99 "${flags[@]}" -c "$src/src/$f" -o "$o"
        objs+=("$o")
    done
    rm -f "$uw/libunwind.a"
    arm-linux-gnueabihf-ar rcs "$uw/libunwind.a" "${objs[@]}"
    # The musl wrapper's specs bring crt1.o/crti.o/crtn.o and libc.a from Debian's musl, so
    # rustc must not look for its own (absent) self-contained copies.
    env RUSTC_BOOTSTRAP=1 \
        "$(var "$t" LINKER)=arm-linux-musleabihf-gcc" \
        "$(var "$t" RUSTFLAGS)=-C link-self-contained=no -L native=$uw" \
        cargo build --locked --release --target "$t" -Z build-std=std,panic_abort -p mptcp-pmd
}

# `--version` of a built binary, natively or under qemu-user (required under CI=true).
run_version() {
    local rc=0
    run_target "$1" "$2" --version || rc=$?
    if [ "$rc" = 127 ] && [ "${CI:-}" != true ]; then
        echo "(--version not run: no $(emulator_for "$1"))"
        return 0
    fi
    return "$rc"
}

for t in "${targets[@]}"; do
    case " ${ALL[*]} " in
        *" $t "*) ;;
        *) die "unsupported target $t (supported: ${ALL[*]})" ;;
    esac
    if have_std "$t"; then
        build_prebuilt_std "$t"
    elif [ "$t" = armv7-unknown-linux-musleabihf ]; then
        build_armv7_from_source
    else
        die "rustup cannot add the $t target"
    fi
    BIN="$TD/$t/release/mptcp-pmd"
    # Static: no program interpreter, no dynamic section. Stripped: no symbol table.
    need readelf binutils
    if readelf -l "$BIN" | grep -q INTERP || readelf -d "$BIN" 2>/dev/null | grep -q NEEDED; then
        die "$BIN is not statically linked"
    fi
    if readelf -S "$BIN" | grep -q '\.symtab'; then
        die "$BIN is not stripped"
    fi
    size=$(stat -c %s "$BIN")
    [ "$size" -le "$MAX_BYTES" ] || die "$BIN is $size bytes, over the $MAX_BYTES limit"
    version=$(run_version "$t" "$BIN")
    if [ -n "$out_file" ]; then cp "$BIN" "$out_file"; BIN="$out_file"; fi
    if [ -n "$out_dir" ]; then mkdir -p "$out_dir"; cp "$BIN" "$out_dir/mptcp-pmd-$t"; fi
    echo "$t: $BIN: $size bytes (static, stripped; limit $MAX_BYTES): $version"
done
