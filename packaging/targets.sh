# Sourced by packaging/build-static.sh and packaging/build-deb.sh: the static targets, and how
# to run one of their binaries on this machine (natively, or under Debian's qemu-user).

STATIC_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

# The qemu-user program that runs TRIPLE's binaries here, or nothing when they run natively.
emulator_for() {
    local host
    host="$(uname -m)"
    case "$1" in
        x86_64-*) [ "$host" = x86_64 ] || echo qemu-x86_64 ;;
        aarch64-*) [ "$host" = aarch64 ] || echo qemu-aarch64 ;;
        armv7-*) case "$host" in armv7* | aarch64) ;; *) echo qemu-arm ;; esac ;;
        *) echo "unknown-target-$1" ;;
    esac
}

# run_target TRIPLE BIN [ARGS...]: run BIN (built for TRIPLE) here. Returns 127 with a message
# naming the Debian package when the emulator it needs is missing.
run_target() {
    local t="$1" emu
    shift
    emu="$(emulator_for "$t")"
    if [ -n "$emu" ] && ! command -v "$emu" >/dev/null 2>&1; then
        echo "$emu is missing (Debian package: qemu-user)" >&2
        return 127
    fi
    $emu "$@"
}
