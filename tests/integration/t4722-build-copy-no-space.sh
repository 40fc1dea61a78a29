#!/usr/bin/env bash
# A COPY that fills the store's file system (ENOSPC while its files are written, on the copy's
# threads or its walk): the build fails with one line naming the step and the error, exits
# non-zero and leaves nothing behind: no tag, no temp dir, no mount; the store still builds.
. "$(dirname "$0")/../lib/test-lib.sh"

# A tmpfs of 40 MiB (loop devices are not there in every test root, e.g. make check-fresh's).
small=$T/small
mkdir -p "$small"
if ! mount -t tmpfs -o size=40m,mode=755 mkimg-small "$small"; then
    t_fail "mounting a tmpfs of 40 MiB for the store"
    t_done
fi
cleanup() {
    umount "$small" 2>/dev/null || umount -l "$small"
    t_cleanup
}
trap cleanup EXIT
export MKIMG_ROOT=$small/store
t_import_busybox

ctx=$T/ctx
for d in $(seq 1 30); do
    mkdir -p "$ctx/tree/d$d"
    for i in $(seq 1 100); do head -c 16384 /dev/urandom >"$ctx/tree/d$d/f$i"; done
done
printf 'FROM busybox\nCOPY tree /data/\n' >"$ctx/Dockerfile"

t_fails "a COPY of 48 MB into a store with less room fails" \
    "$MKIMG" build -q -t full "$ctx"
"$MKIMG" build -q -t full "$ctx" >"$T/out" 2>"$T/err"
sed "s/^/# /" "$T/err"
t_eq "one line on stderr" "$(wc -l <"$T/err")" 1
t_grep "it names the step and the error" \
    '^mkimg: Dockerfile:2: .*No space left on device' "$T/err"
t_fails "no image is tagged" "$MKIMG" inspect full
t_eq "no temp dir is left in the store" "$(ls -A "$MKIMG_ROOT/tmp" 2>/dev/null)" ""
t_eq "no mount is left" "$(awk -v p="$T/" 'index($2, p) == 1 && $2 != p "small"' /proc/self/mounts)" ""
printf 'FROM busybox\nCOPY Dockerfile /d\n' >"$ctx/Dockerfile.small"
t_ok "the store still builds" "$MKIMG" build -q -t small -f "$ctx/Dockerfile.small" "$ctx"
t_done
