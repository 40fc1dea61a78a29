#!/usr/bin/env bash
# A step's commit opens each regular file it writes to the layer once, for its xattrs and its
# data (issue 19: it opened an O_PATH fd and listed the xattrs through its /proc magic link,
# then opened the file again for the data: 60,000 of the syscalls of a COPY of 20,000 files).
# strace counts the commit's opens of the names a RUN created, which nothing but the commit
# opens; a later name of a hard link is not opened for reading; the xattrs of a COPY still
# reach the layer.
. "$(dirname "$0")/../lib/test-lib.sh"

t_need strace
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx"
echo tagged >"$ctx/tagged"
xattrs=yes
setfattr -n user.mkimg.kind -v probe "$ctx/tagged" 2>/dev/null || xattrs=
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY tagged /tagged
RUN mkdir /x && i=0 && while [ $i -lt 40 ]; do echo $i >/x/a$i; i=$((i + 1)); done && ln /x/a1 /x/b1
DF
t_ok "builds" strace -f -e trace=openat,open -o "$T/trace" "$MKIMG" build -q -t oo "$ctx"
n=$(grep -cE 'openat\([0-9]+, "a[0-9]+", ' "$T/trace" || true)
t_eq "40 files opened once each" "$n" 40
t_eq "none by O_PATH" "$(grep -E 'openat\([0-9]+, "a[0-9]+", ' "$T/trace" | grep -c O_PATH)" 0
t_eq "the hard link's later name not for reading" \
    "$(grep -E 'openat\([0-9]+, "b1", ' "$T/trace" | grep -vc O_PATH)" 0
umoci unpack --image "$MKIMG_ROOT:oo:latest" "$T/out" >/dev/null 2>&1
t_eq "the files are in the image" "$(ls "$T/out/rootfs/x" | wc -l)" 41
t_eq "with their content" "$(cat "$T/out/rootfs/x/a39")" 39
t_eq "the link is one" "$(stat -c %i "$T/out/rootfs/x/a1")" "$(stat -c %i "$T/out/rootfs/x/b1")"
if [ -n "$xattrs" ]; then
    d=$(skopeo inspect --raw "oci:$MKIMG_ROOT:oo:latest" | jq -r '.layers[1].digest' | sed 's/^sha256://')
    got=$(python3 -c 'import sys, tarfile
t = tarfile.open(sys.argv[1])
print(t.getmember("tagged").pax_headers.get("SCHILY.xattr.user.mkimg.kind"))' \
        "$MKIMG_ROOT/blobs/sha256/$d")
    t_eq "the COPY's xattr is in its layer" "$got" probe
else
    t_skip "no user xattrs on $T's file system"
fi
t_done
