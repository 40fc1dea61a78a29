#!/usr/bin/env bash
# Cache mounts of a rootless build are store objects too: df counts them, fsck finds them
# whole, prune --all removes them, files of subordinate ids and read-only directories in them
# (and an overlay cache mount's work dir) included.
. "$(dirname "$0")/../lib/test-lib.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
mkdir -p "$T/u/ctx"
cp "$MKIMG" "$T/u/mkimg"
cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
cat >"$T/u/ctx/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,target=/c mkdir -p /c/d && echo x >/c/d/f && chown -R 1000:1000 /c/d && chmod 500 /c/d
RUN --mount=type=cache,target=/o,from=busybox,source=/etc touch /o/new
DF
chown -R "$user" "$T/u"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }

t_ok "rootless rootfs" as_user ./busybox-rootfs.sh rootfs
t_ok "rootless import" as_user ./mkimg import rootfs busybox:latest
t_ok "rootless build with two cache mounts" as_user ./mkimg build -q -t cm ctx
as_user ./mkimg df >"$T/df" 2>&1
t_grep "df counts both" '^cache mounts +2 ' "$T/df"
t_eq "fsck finds them whole" "$(as_user ./mkimg fsck 2>&1)" "store is clean"
as_user ./mkimg prune --all >"$T/out" 2>&1
t_grep "prune --all removes both" ', 2 cache mounts; ' "$T/out"
t_eq "nothing is left of them" "$(ls -A "$T/u/store/cache/mounts")" ""
t_eq "clean after" "$(as_user ./mkimg fsck 2>&1)" "store is clean"
t_done
