#!/usr/bin/env bash
# A COPY rebuilt after its sources changed gives what a build from scratch gives (issue 19):
# with SOURCE_DATE_EPOCH the same image ID from a store that built the old sources and from
# an empty one; the new content, mode and mtime arrive and a deleted file is gone.
. "$(dirname "$0")/../lib/test-lib.sh"

ctx=$T/ctx
mkdir -p "$ctx/tree/a/b" "$ctx/tree/c"
for i in $(seq 1 30); do echo "file $i" >"$ctx/tree/a/f$i"; done
for i in $(seq 1 5); do head -c 5000 /dev/urandom >"$ctx/tree/a/b/g$i"; done
echo keep >"$ctx/tree/c/keep"
echo gone >"$ctx/tree/c/gone"
printf 'FROM scratch\nCOPY tree /data/\n' >"$ctx/Dockerfile"
export SOURCE_DATE_EPOCH=1700000000
t_ok "first build" "$MKIMG" build -q -t rb1 "$ctx"

echo "changed 7" >"$ctx/tree/a/f7"
rm "$ctx/tree/c/gone"
chmod 0600 "$ctx/tree/a/f3"
touch -d '2002-03-04 05:06:07' "$ctx/tree/a/b/g2"
id2=$("$MKIMG" build -q -t rb2 "$ctx" | tail -n 1)
id3=$(MKIMG_ROOT=$T/fresh "$MKIMG" build -q -t rb3 "$ctx" | tail -n 1)
t_ok "the rebuild has an image ID ($id2)" test -n "$id2"
t_eq "and it is a clean build's" "$id2" "$id3"
umoci unpack --image "$MKIMG_ROOT:rb2:latest" "$T/out" >/dev/null 2>&1
t_eq "the changed file's new content is in" "$(cat "$T/out/rootfs/data/a/f7")" "changed 7"
t_ok "the deleted file is gone" test ! -e "$T/out/rootfs/data/c/gone"
t_eq "the new mode arrives" "$(stat -c %a "$T/out/rootfs/data/a/f3")" 600
t_eq "the new mtime arrives" "$(stat -c %Y "$T/out/rootfs/data/a/b/g2")" "$(stat -c %Y "$ctx/tree/a/b/g2")"
t_ok "the rest is whole" diff -r "$ctx/tree" "$T/out/rootfs/data"
t_done
