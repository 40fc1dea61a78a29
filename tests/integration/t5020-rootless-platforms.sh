#!/usr/bin/env bash
# An ordinary user (subordinate id range) builds for linux/amd64,linux/arm64: the arm64 RUN
# runs through QEMU user emulation inside the user's namespaces (the F flag), as root inside.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$(dirname "$0")/../lib/platform.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
[ "$(uname -m)" = x86_64 ] || { t_skip "the test is written for an x86-64 host"; t_done; exit; }
t_platform_require
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
mkdir -p "$T/u/ctx"
cp "$MKIMG" "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
cp "$(t_arm64_busybox_bin)" "$T/u/busybox-arm64"
printf 'FROM busybox\nRUN uname -m >/arch && id -u >/uid\n' >"$T/u/ctx/Dockerfile"
chown -R "$user" "$T/u"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }

t_ok "rootless arm64 rootfs" as_user BUSYBOX=./busybox-arm64 ./busybox-rootfs.sh arm
t_ok "rootless amd64 rootfs" as_user ./busybox-rootfs.sh amd
t_ok "rootless import" as_user ./mkimg import amd busybox
t_ok "rootless import --platform linux/arm64" as_user ./mkimg import --platform linux/arm64 arm busybox
t_ok "rootless build for two platforms" \
    as_user ./mkimg build -q --platform linux/amd64,linux/arm64 -t m -o type=local,dest=out ctx
t_eq "arm64 RUN emulated" "$(cat "$T/u/out/linux_arm64/arch" 2>&1)" aarch64
t_eq "as root inside" "$(cat "$T/u/out/linux_arm64/uid" 2>&1)" 0
t_eq "amd64 RUN native" "$(cat "$T/u/out/linux_amd64/arch" 2>&1)" x86_64
t_done
