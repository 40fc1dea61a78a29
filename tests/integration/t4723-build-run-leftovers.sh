#!/usr/bin/env bash
# A RUN whose command leaves processes behind (a daemon started with &): they are killed and
# reaped before mkimg reads the upperdir (the container's pid 1 reports the status only then,
# and mkimg commits the layer while pid 1's mounts go away). What they wrote before is in the
# layer, nothing after: a writer still appending when the command exits does not make the
# layer's tar disagree with itself, and one that would write later writes nothing.
. "$(dirname "$0")/../lib/test-lib.sh"

t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
RUN (while :; do echo x >>/busy; done) & (sleep 1; echo late >/late) & \
    while [ ! -s /busy ]; do :; done; echo now >/now
RUN ls /
DF
t_ok "the build with processes left behind succeeds" "$MKIMG" build -q -t left "$ctx"
umoci unpack --image "$MKIMG_ROOT:left:latest" "$T/out" >/dev/null 2>&1
t_ok "its layers unpack (umoci)" test -d "$T/out/rootfs"
t_eq "the command's own file is there" "$(cat "$T/out/rootfs/now" 2>/dev/null)" now
t_ok "the busy writer's file is whole lines" sh -c "test -s '$T/out/rootfs/busy' && ! grep -qv '^x\$' '$T/out/rootfs/busy'"
t_ok "the late writer wrote nothing" test ! -e "$T/out/rootfs/late"
sleep 1.2
t_ok "nor does it after the build" sh -c "! ls '$MKIMG_ROOT'/snapshots/*/late 2>/dev/null | grep -q ."
t_ok "the store checks out" "$MKIMG" fsck
t_done
