#!/usr/bin/env bash
# A step's commit looks at each entry of its upperdir once (issue 19: the tar writer's two
# passes, whiteouts first, each stat-ed every name): strace counts the fstatat of the names a
# RUN created, which nothing but the commit looks at.
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
RUN mkdir /x && i=0 && while [ $i -lt 50 ]; do echo $i >/x/a$i; i=$((i + 1)); done && rm /bin/true
DF
t_ok "builds" strace -f -e trace=newfstatat,fstatat64,statx -o "$T/trace" "$MKIMG" build -q -t so "$ctx"
n=$(grep -cE '(newfstatat|fstatat64|statx)\([0-9]+, "a[0-9]+"' "$T/trace" || true)
t_ok "50 files stat-ed once each ($n)" test "$n" -eq 50
umoci unpack --image "$MKIMG_ROOT:so:latest" "$T/out" >/dev/null 2>&1
t_eq "the files are in the image" "$(ls "$T/out/rootfs/x" | wc -l)" 50
t_ok "and the deleted one is not" test ! -e "$T/out/rootfs/bin/true"
t_done
