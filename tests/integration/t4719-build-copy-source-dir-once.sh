#!/usr/bin/env bash
# A COPY opens its sources by name under their directory, resolved once per directory (issue
# 19: each of the 20,000 files of a cold manyfiles COPY was opened by its whole path with
# openat2(RESOLVE_IN_ROOT), a walk of four components each): strace counts the openat2 calls
# and the opens by name. A source that is a symlink is still followed inside the context, and
# a file reached through a symlinked directory is copied from it.
. "$(dirname "$0")/../lib/test-lib.sh"

t_need strace
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx/tree/a" "$ctx/tree/b" "$ctx/real"
for i in $(seq 1 25); do
    echo "a $i" >"$ctx/tree/a/f$i"
    echo "b $i" >"$ctx/tree/b/g$i"
done
echo target >"$ctx/real/t"
ln -s real/t "$ctx/link"
ln -s real "$ctx/dirlink"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY tree /tree/
COPY link /link
COPY dirlink/t /viadir
DF
t_ok "builds" strace -f -e trace=openat2,openat -o "$T/trace" "$MKIMG" build -q -t so "$ctx"
n2=$(grep -cE 'openat2\([0-9]+, "tree/(a|b)/' "$T/trace" || true)
t_eq "no file of the tree opened by its whole path" "$n2" 0
# The copy runs in a child of the build; the build's own process reads the same names when it
# commits the layer.
main=$(head -n 1 "$T/trace" | awk '{print $1}')
t_eq "each by its name, by the copy" "$(grep -E 'openat\([0-9]+, "(f|g)[0-9]+", O_RDONLY' "$T/trace" |
    awk -v m="$main" '$1 != m' | wc -l)" 50
umoci unpack --image "$MKIMG_ROOT:so:latest" "$T/out" >/dev/null 2>&1
t_eq "the files are in the image" "$(ls "$T/out/rootfs/tree/a" "$T/out/rootfs/tree/b" | grep -c '^[fg]')" 50
t_eq "with their content" "$(cat "$T/out/rootfs/tree/b/g7")" "b 7"
t_eq "a symlink source is followed" "$(cat "$T/out/rootfs/link")" target
t_ok "into a regular file" test -f "$T/out/rootfs/link" -a ! -L "$T/out/rootfs/link"
t_eq "a file through a symlinked directory" "$(cat "$T/out/rootfs/viadir")" target
t_done
