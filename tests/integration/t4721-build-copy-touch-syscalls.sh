#!/usr/bin/env bash
# A COPY from the context rebuilt after one of its many files changed (manyfiles' "touch",
# issue 19) links the others from its last snapshot with fewer system calls a file: no stat
# of dest in the root when the copy's walk created dest's directory (nothing can be there),
# no llistxattr of the snapshot's file when its layer's index says it has none, and no walk
# of the context of its own to find what to link (the key's walk lists those files): strace
# counts them. What the checks they replace guard stays: a dest directory of the base image
# with a file at dest, two sources copying to the same dest, an xattr the snapshot's file
# still has while its source lost it, --chown/--chmod; each rebuild's layers are a clean
# build's (cmp), and the image ID is a clean build's (SOURCE_DATE_EPOCH).
. "$(dirname "$0")/../lib/test-lib.sh"

t_need strace
export SOURCE_DATE_EPOCH=1700000000
t_import_busybox
MKIMG_ROOT=$T/fresh "$MKIMG" import "$T/bbroot" busybox:latest >/dev/null
ctx=$T/ctx
mkdir -p "$ctx/tree" "$ctx/etcfiles" "$ctx/one/x" "$ctx/two/x" "$ctx/xt"
for d in a b c; do
    mkdir -p "$ctx/tree/$d/s"
    for i in $(seq 10 49); do echo "$d $i" >"$ctx/tree/$d/s/f$i"; done
done
cp "$T/bbroot/etc/passwd" "$ctx/etcfiles/passwd"
echo "127.0.0.1 here" >"$ctx/etcfiles/hosts"
echo extra >"$ctx/etcfiles/extra"
for i in 1 2 3; do
    echo "one $i" >"$ctx/one/x/g$i"
    echo "two $i" >"$ctx/two/x/g$i"
done
echo y >"$ctx/xt/y"
echo z >"$ctx/xt/z"
xattr=false
setfattr -n user.t -v 1 "$ctx/xt/y" 2>/dev/null && xattr=true
find "$ctx" -type f -exec touch -d @1600000000 {} +
printf 'FROM busybox\nCOPY tree /data/\n' >"$ctx/Dockerfile"
printf 'FROM busybox\nCOPY etcfiles /etc/\n' >"$ctx/Dockerfile.etc"
printf 'FROM busybox\nCOPY one two /d/\n' >"$ctx/Dockerfile.two"
printf 'FROM busybox\nCOPY xt /xt/\n' >"$ctx/Dockerfile.xt"
printf 'FROM busybox\nCOPY --chown=7:8 --chmod=640 tree /other/\n' >"$ctx/Dockerfile.own"

image_id() { MKIMG_ROOT=$1 "$MKIMG" inspect "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])'; }
# Rebuilds with Dockerfile $1 (strace's log in $T/trace) and builds it in a fresh store: the same
# image, layer for layer.
same_as_clean() { # DOCKERFILE TAG
    strace -f -e trace=newfstatat,llistxattr,linkat -o "$T/trace" \
        "$MKIMG" build -q -f "$ctx/$1" -t "$2" "$ctx" >/dev/null &&
        MKIMG_ROOT=$T/fresh "$MKIMG" build -q -f "$ctx/$1" -t "$2" "$ctx" >/dev/null || return 1
    t_same_layers "$MKIMG_ROOT" "$T/fresh" "$2" 2 || return 1
    test "$(image_id "$MKIMG_ROOT" "$2")" = "$(image_id "$T/fresh" "$2")"
}
count() { grep -cE "$1" "$T/trace" || true; }

t_ok "first build" "$MKIMG" build -q -t tc1 "$ctx"
echo "changed" >"$ctx/tree/b/s/f30"
t_ok "a touch rebuild is a clean build" same_as_clean Dockerfile tc2
t_eq "the 119 others are linked" "$(count 'linkat\(.*"f[0-9]+", 0\) += 0')" 119
t_eq "no stat of a dest in a directory the copy created" \
    "$(count 'newfstatat\([0-9]+, "f[0-9]+", .*ENOENT')" 0
n=$(count 'llistxattr\("/proc/self/fd/[0-9]+/.*f[0-9]+"')
t_ok "xattrs listed on the source side only ($n for 120 files)" test "$n" -le 120
# The key's walk, the copy's, the snapshot's file, the commit's walk of the upperdir: four a
# file (a walk of its own to find what to link made five).
n=$(count 'newfstatat\([0-9]+, "f[0-9]+", \{')
t_ok "four stats a file ($n for 120 files)" test "$n" -le 480

t_ok "over the base image's /etc: first build" "$MKIMG" build -q -f "$ctx/Dockerfile.etc" -t te1 "$ctx"
echo "changed" >"$ctx/etcfiles/extra"
t_ok "a rebuild is a clean build" same_as_clean Dockerfile.etc te2
t_eq "the files over the base's are copied, not linked" "$(count 'linkat\(.*"(passwd|hosts)"')" 0

t_ok "two sources to one dest: first build" "$MKIMG" build -q -f "$ctx/Dockerfile.two" -t tt1 "$ctx"
echo "one 1 changed" >"$ctx/one/x/g1"
t_ok "a rebuild is a clean build" same_as_clean Dockerfile.two tt2
umoci unpack --image "$MKIMG_ROOT:tt2:latest" "$T/out" >/dev/null 2>&1
t_eq "the later source's file wins" "$(cat "$T/out/rootfs/d/x/g2")" "two 2"

if $xattr; then
    t_ok "an xattr: first build" "$MKIMG" build -q -f "$ctx/Dockerfile.xt" -t tx1 "$ctx"
    setfattr -x user.t "$ctx/xt/y"
    echo "changed" >"$ctx/xt/z"
    t_ok "the source lost it: a rebuild is a clean build" same_as_clean Dockerfile.xt tx2
    t_eq "the snapshot's file that has it is not linked" "$(count 'linkat\(.*"y", 0\) += 0')" 0
else
    t_skip "no user xattrs here"
fi

t_ok "--chown/--chmod: first build" "$MKIMG" build -q -f "$ctx/Dockerfile.own" -t to1 "$ctx"
echo "changed again" >"$ctx/tree/b/s/f30"
t_ok "a touch rebuild is a clean build" same_as_clean Dockerfile.own to2
t_eq "the 119 others are linked" "$(count 'linkat\(.*"f[0-9]+", 0\) += 0')" 119
t_eq "no stat of a dest in a directory the copy created" \
    "$(count 'newfstatat\([0-9]+, "f[0-9]+", .*ENOENT')" 0
n=$(count 'llistxattr\("/proc/self/fd/[0-9]+/.*f[0-9]+"')
t_ok "xattrs listed on the source side only ($n for 120 files)" test "$n" -le 120
t_ok "the store checks out" "$MKIMG" fsck
t_done
