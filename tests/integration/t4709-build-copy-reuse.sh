#!/usr/bin/env bash
# A COPY from the context rebuilt after some of its sources changed links the files that did
# not change from the snapshot of its last build (issue 19) and copies the rest: the image is
# a clean build's (SOURCE_DATE_EPOCH: the same ID), and the earlier snapshot is left as it was.
# Changed, deleted, added and chmod-ed files, a new mtime, a hard-link pair, a pair split
# since (one of its names linked, the other copied) and a file with an xattr are copied;
# --chown/--chmod and a RUN that copies an unchanged file up give a clean build's layers.
. "$(dirname "$0")/../lib/test-lib.sh"

export SOURCE_DATE_EPOCH=1700000000
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx/tree/a" "$ctx/tree/b" "$ctx/tree/c"
# Over 1,024 files to link: two threads link them (copy.c, LINK_THREAD_MIN).
for i in $(seq 1 1100); do echo "file $i" >"$ctx/tree/a/f$i"; done
for i in 1 2 3; do head -c 5000 /dev/urandom >"$ctx/tree/b/g$i"; done
echo keep >"$ctx/tree/c/keep"
echo gone >"$ctx/tree/c/gone"
echo pair >"$ctx/tree/h1"
ln "$ctx/tree/h1" "$ctx/tree/h2"
echo split >"$ctx/tree/p1"
ln "$ctx/tree/p1" "$ctx/tree/p2"
echo x >"$ctx/tree/x"
xattr=false
setfattr -n user.t -v 1 "$ctx/tree/x" 2>/dev/null && xattr=true
# Whole seconds: the RUN's cp -p keeps only those, and its copy must equal the lower file.
find "$ctx/tree" -type f -exec touch -d @1600000000 {} +
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY tree /data/
COPY --chown=7:8 --chmod=640 tree /other/
RUN cp -p /data/a/f1 /tmp/k && cp -p /tmp/k /data/a/f1 && rm /tmp/k
DF
t_ok "first build" "$MKIMG" build -q -t rb1 "$ctx"
old=$(ls "$MKIMG_ROOT/snapshots" | while read -r s; do
    [ -e "$MKIMG_ROOT/snapshots/$s/data/c/gone" ] && echo "$s"; done)

echo "changed 7" >"$ctx/tree/a/f7"
rm "$ctx/tree/c/gone"
echo new >"$ctx/tree/c/new"
chmod 0600 "$ctx/tree/a/f3"
touch -d '2002-03-04 05:06:07' "$ctx/tree/b/g2"
# A pair split into two files with the bytes and mtime both had: one inode each again.
cp -p "$ctx/tree/p1" "$ctx/tree/p1.tmp" && mv "$ctx/tree/p1.tmp" "$ctx/tree/p1"
id2=$("$MKIMG" build -q -t rb2 "$ctx" | tail -n 1)
MKIMG_ROOT=$T/fresh "$MKIMG" import "$T/bbroot" busybox:latest >/dev/null
id3=$(MKIMG_ROOT=$T/fresh "$MKIMG" build -q -t rb3 "$ctx" | tail -n 1)
t_ok "the rebuild has an image ID ($id2)" test -n "$id2"
t_eq "and it is a clean build's" "$id2" "$id3"

new=$(ls "$MKIMG_ROOT/snapshots" | while read -r s; do
    [ -e "$MKIMG_ROOT/snapshots/$s/data/c/new" ] && [ ! -e "$MKIMG_ROOT/snapshots/$s/other" ] &&
        echo "$s"; done)
links() { stat -c %h "$MKIMG_ROOT/snapshots/$new/data/$1"; }
t_eq "an unchanged file is linked from the last build's snapshot" "$(links a/f1)" 2
t_eq "so is one in another directory" "$(links b/g1)" 2
t_eq "and one of the second half, which the second thread links" "$(links a/f999)" 2
t_eq "the changed file is copied" "$(links a/f7)" 1
t_eq "the chmod-ed one too" "$(links a/f3)" 1
t_eq "and the one with a new mtime" "$(links b/g2)" 1
t_eq "the hard-link pair is a pair of its own" "$(links h1) $(links h2)" "2 2"
t_ok "not the last build's" test "$(stat -c %i "$MKIMG_ROOT/snapshots/$new/data/h1")" != \
    "$(stat -c %i "$MKIMG_ROOT/snapshots/$old/data/h1")"
# (p1 shares the inode that is a pair in the last build's snapshot: 3 links.)
t_eq "a pair split since: one name linked, the other copied" "$(links p1) $(links p2)" "3 1"
t_ok "a pair split since is two files, not one linked twice" test \
    "$(stat -c %i "$MKIMG_ROOT/snapshots/$new/data/p1")" != \
    "$(stat -c %i "$MKIMG_ROOT/snapshots/$new/data/p2")"
if $xattr; then
    t_eq "a file with an xattr is copied" "$(links x)" 1
else
    t_skip "no user xattrs here"
fi
t_eq "the last build's snapshot keeps its content" \
    "$(cat "$MKIMG_ROOT/snapshots/$old/data/a/f7")" "file 7"
t_eq "and its mode" "$(stat -c %a "$MKIMG_ROOT/snapshots/$old/data/a/f3")" 644
t_ok "the store checks out" "$MKIMG" fsck

umoci unpack --image "$MKIMG_ROOT:rb2:latest" "$T/out" >/dev/null 2>&1
t_eq "the changed file's new content is in" "$(cat "$T/out/rootfs/data/a/f7")" "changed 7"
t_ok "the deleted file is gone" test ! -e "$T/out/rootfs/data/c/gone"
t_ok "the rest is whole" diff -r "$ctx/tree" "$T/out/rootfs/data"
t_eq "--chown and --chmod hold for a linked file" \
    "$(stat -c '%u:%g %a' "$T/out/rootfs/other/a/f1")" "7:8 640"
t_done
