#!/usr/bin/env bash
# The snapshot of a big layer that nothing in its build mounts is not kept (issue 19): the
# layer's blob is written and its tree removed before the build's syncfs (the last step's
# big files emptied as the blob is written), so a 1 GiB COPY writes 1 GiB, not 2. The image is the same (SOURCE_DATE_EPOCH: same ID as with -o
# type=local, which keeps every snapshot), and every reader unpacks the snapshot from the
# blob: `mkimg run`, a build FROM the image, a cache hit with a RUN on top, COPY --from the
# image, a rebuild after a touch; fsck calls the store clean. A small layer keeps its
# snapshot, and a big one a later step of the same build mounts is kept too.
. "$(dirname "$0")/../lib/test-lib.sh"

export SOURCE_DATE_EPOCH=1700000000
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx"
head -c $((80 << 20)) /dev/urandom >"$ctx/big.bin"
echo small >"$ctx/small.txt"
printf 'FROM busybox\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\n' >"$ctx/Dockerfile"
sum=$(sha256sum <"$ctx/big.bin" | cut -d' ' -f1)
chain_of() { # IMAGE N: chain ID (hex) of the first N layers, as OCI defines it
    local c="" d
    for d in $("$MKIMG" inspect "$1" | jq -r ".[0].RootFS.Layers[:$2][]"); do
        if [ -z "$c" ]; then c=$d; else
            c=sha256:$(printf '%s %s' "$c" "$d" | sha256sum | cut -d' ' -f1); fi
    done
    echo "${c#sha256:}"
}
snaps() { ls "$MKIMG_ROOT/snapshots" | sort; }

# Under strace (when there is one): the big file is emptied as its blob is written (holes
# punched behind the reads), so its pages are dropped, never written back.
traced() { # FILE CMD...: CMD, its fallocate calls into FILE
    if command -v strace >/dev/null; then strace -f -qq -e trace=fallocate -o "$@"; else
        : >"$1"; "${@:2}"; fi
}
t_ok "a build whose last COPY is big" traced "$T/big.trace" "$MKIMG" build -q -t big "$ctx"
if command -v strace >/dev/null; then
    t_grep "empties the big file as it writes the blob" "FALLOC_FL_PUNCH_HOLE" "$T/big.trace"
else
    t_skip "strace is not installed"
fi
n=$("$MKIMG" inspect big | jq '.[0].RootFS.Layers | length')
top=$(chain_of big "$n")
t_ok "leaves no snapshot for that layer" test ! -e "$MKIMG_ROOT/snapshots/$top"
t_ok "the small layer keeps its snapshot" test -d "$MKIMG_ROOT/snapshots/$(chain_of big $((n - 1)))"
t_ok "nothing is left in the store's tmp" test -z "$(ls "$MKIMG_ROOT/tmp")"
t_eq "fsck: the store is clean" "$("$MKIMG" fsck 2>&1)" "store is clean"
t_eq "so is --deep" "$("$MKIMG" fsck --deep 2>&1)" "store is clean"
id=$("$MKIMG" inspect --format '{{.Id}}' big)

# The same build in a store of its own with -o type=local keeps the snapshot: same image.
MKIMG_ROOT=$T/store2 t_import_busybox
t_ok "the same build with -o type=local" traced "$T/local.trace" env MKIMG_ROOT="$T/store2" \
    "$MKIMG" build -q -t big -o "type=local,dest=$T/rootfs" "$ctx"
t_ok "keeps the snapshot" test -d "$T/store2/snapshots/$top"
t_ok "whole" cmp "$ctx/big.bin" "$T/store2/snapshots/$top/big.bin"
t_ok "(no hole punched)" test -z "$(grep PUNCH_HOLE "$T/local.trace")"
t_eq "the same image" "$(MKIMG_ROOT=$T/store2 "$MKIMG" inspect --format '{{.Id}}' big)" "$id"
t_ok "and exports the file" cmp "$ctx/big.bin" "$T/rootfs/big.bin"

t_eq "mkimg run sees the file" "$("$MKIMG" run big sha256sum /big.bin | cut -d' ' -f1)" "$sum"
t_ok "its snapshot is unpacked now" test -d "$MKIMG_ROOT/snapshots/$top"

# From here on the snapshot is gone again, as after the build.
drop() { rm -rf "$MKIMG_ROOT/snapshots/$top"; }
drop
mkdir -p "$T/c2"
printf 'FROM big\nRUN sha256sum /big.bin | cut -d" " -f1 >/sum\n' >"$T/c2/Dockerfile"
t_ok "a build FROM the image whose RUN reads the file" "$MKIMG" build -q -t from-big "$T/c2"
t_eq "reads it whole" "$("$MKIMG" run from-big cat /sum)" "$sum"

drop
printf 'FROM busybox\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\nRUN sha256sum </big.bin | cut -d" " -f1 >/sum\n' \
    >"$ctx/Dockerfile.on"
"$MKIMG" build -t on-top -f "$ctx/Dockerfile.on" "$ctx" >"$T/on.log" 2>&1
t_eq "a build whose cache hits that layer, then RUNs on top" "$?" 0
t_eq "the COPY was a hit" "$(grep -c CACHED "$T/on.log")" 2
t_eq "the RUN read the file" "$("$MKIMG" run on-top cat /sum)" "$sum"

drop
mkdir -p "$T/c3"
printf 'FROM busybox\nCOPY --from=big /big.bin /copied.bin\n' >"$T/c3/Dockerfile"
t_ok "COPY --from the image" "$MKIMG" build -q -t copied "$T/c3"
t_eq "copies the file" "$("$MKIMG" run copied sha256sum /copied.bin | cut -d' ' -f1)" "$sum"

drop
printf 'FROM busybox\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\n' >"$ctx/Dockerfile"
touch "$ctx/big.bin"
t_ok "a rebuild after a touch" "$MKIMG" build -q -t touched "$ctx"
t_eq "gives the same image" "$("$MKIMG" inspect --format '{{.Id}}' touched)" "$id"
head -c 100 /dev/urandom >>"$ctx/big.bin"
sum2=$(sha256sum <"$ctx/big.bin" | cut -d' ' -f1)
t_ok "a rebuild after a change" "$MKIMG" build -q -t changed "$ctx"
t_eq "has the new file" "$("$MKIMG" run changed sha256sum /big.bin | cut -d' ' -f1)" "$sum2"
t_eq "fsck: still clean" "$("$MKIMG" fsck 2>&1)" "store is clean"
t_ok "prune works" "$MKIMG" prune
t_eq "and leaves a clean store" "$("$MKIMG" fsck 2>&1)" "store is clean"

# A big layer a later step of the same build mounts is kept: it is not unpacked again.
printf 'FROM busybox\nCOPY big.bin /b2.bin\nRUN test -s /b2.bin\n' >"$T/c2/Dockerfile"
cp "$ctx/big.bin" "$T/c2/big.bin"
t_ok "a big COPY with a RUN after it" "$MKIMG" build -q -t kept "$T/c2"
t_ok "keeps the COPY's snapshot" test -d "$MKIMG_ROOT/snapshots/$(chain_of kept 2)"
t_done
