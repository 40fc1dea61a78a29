# tests/lib/platform.sh - foreign platforms for integration tests (sourced after test-lib.sh).
#
# t_binfmt_setup: QEMU user emulation for arm64 registered in binfmt_misc (mounted when it is
# not), from Debian's qemu-user-static (/usr/lib/binfmt.d/qemu-aarch64.conf, flags OPF: the F
# flag opens the interpreter at registration, so it works inside mkimg's namespaces).
# t_arm64_busybox DIR: an arm64 busybox root file system from Debian's busybox-static:arm64,
# downloaded once into $MKIMG_ARM64_CACHE (after `dpkg --add-architecture arm64` and an
# `apt-get update` when apt does not know the architecture yet).
MKIMG_ARM64_CACHE=${MKIMG_ARM64_CACHE:-/var/tmp/mkimg-arm64}
BINFMT=/proc/sys/fs/binfmt_misc

t_binfmt_setup() {
    [ -e "$BINFMT/register" ] || mount -t binfmt_misc none "$BINFMT" 2>/dev/null || return 1
    if [ ! -e "$BINFMT/qemu-aarch64" ]; then
        [ -r /usr/lib/binfmt.d/qemu-aarch64.conf ] || return 1
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT/register" 2>/dev/null || return 1
    fi
    grep -q '^enabled' "$BINFMT/qemu-aarch64" && grep -q '^flags:.*F' "$BINFMT/qemu-aarch64"
}

t_arm64_busybox_bin() {
    local bb=$MKIMG_ARM64_CACHE/root/bin/busybox
    [ -x "$bb" ] && { echo "$bb"; return 0; }
    mkdir -p "$MKIMG_ARM64_CACHE" || return 1
    if ! ls "$MKIMG_ARM64_CACHE"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            dpkg --add-architecture arm64 && apt-get update -qq >/dev/null || return 1
        fi
        (cd "$MKIMG_ARM64_CACHE" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1) ||
            { apt-get update -qq >/dev/null &&
              (cd "$MKIMG_ARM64_CACHE" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1); } ||
            return 1
    fi
    dpkg-deb -x "$MKIMG_ARM64_CACHE"/busybox-static_*_arm64.deb "$MKIMG_ARM64_CACHE/root" || return 1
    [ -x "$bb" ] && echo "$bb"
}

# Needs t_binfmt_setup first: the rootfs script asks the arm64 busybox for its applets.
t_arm64_busybox() { # DIR
    local bb
    bb=$(t_arm64_busybox_bin) || return 1
    BUSYBOX=$bb "$MKIMG_TOP/samples/busybox-rootfs.sh" "$1"
}

# t_platform_require: skips the whole test (exit 0 after t_done) when arm64 emulation or the
# arm64 busybox cannot be had; a failure under MKIMG_TEST_STRICT=1.
t_platform_require() {
    if t_binfmt_setup && t_arm64_busybox "$T/arm64root" >/dev/null 2>&1; then
        return 0
    fi
    if [ "${MKIMG_TEST_STRICT:-0}" = 1 ]; then
        t_fail "arm64 emulation (qemu-user-static, binfmt_misc) or busybox-static:arm64 missing"
    else
        t_skip "arm64 emulation (qemu-user-static, binfmt_misc) or busybox-static:arm64 missing"
    fi
    t_done
    exit
}
