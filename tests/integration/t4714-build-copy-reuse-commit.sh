#!/usr/bin/env bash
# A COPY rebuilt after some of its many files changed commits its layer by copying the entries
# of the files it linked from its last build's snapshot out of that build's layer (the index
# ROOT/tar-index/ records where each sits), without opening, reading or listing the xattrs of
# those files (issue 19): strace counts the opens of the commit. The layer is byte for byte a
# clean build's (cmp), with changed, deleted, added, chmod-ed, re-timed, hard-linked, long-named
# and xattr files; an index that is corrupt, or whose entries are not where it says, or that
# is missing, costs the reads again and changes nothing in the layer.
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
export SOURCE_DATE_EPOCH=1700000000
t_import_busybox
MKIMG_ROOT=$T/fresh "$MKIMG" import "$T/bbroot" busybox:latest >/dev/null
ctx=$T/ctx
long=$(printf 'l%.0s' $(seq 1 120))
mkdir -p "$ctx/tree/a" "$ctx/tree/b" "$ctx/tree/c" "$ctx/tree/$long"
for i in $(seq 10 99); do echo "file $i" >"$ctx/tree/a/f$i"; done
for i in 1 2 3; do head -c 5000 /dev/urandom >"$ctx/tree/b/g$i"; done
echo deep >"$ctx/tree/$long/f$long"
echo gone >"$ctx/tree/c/gone"
echo pair >"$ctx/tree/h1"
ln "$ctx/tree/h1" "$ctx/tree/h2"
echo x >"$ctx/tree/x"
setfattr -n user.t -v 1 "$ctx/tree/x" 2>/dev/null || true
find "$ctx/tree" -type f -exec touch -d @1600000000 {} +
printf 'FROM busybox\nCOPY tree /data/\n' >"$ctx/Dockerfile"
printf 'FROM busybox\nCOPY --chown=7:8 --chmod=640 tree /other/\n' >"$ctx/Dockerfile.own"
df=$ctx/Dockerfile
t_ok "first build" "$MKIMG" build -q -t rc1 "$ctx"
t_ok "it leaves an index of its layer" test "$(ls "$MKIMG_ROOT/tar-index" | wc -l)" = 1

# Builds ctx as tag in the store (strace's log in $T/trace) and in a fresh one: the layers of
# both are compared byte for byte.
same_as_clean() { # TAG
    strace -f -e trace=openat -o "$T/trace" "$MKIMG" build -q -f "$df" -t "$1" "$ctx" >/dev/null &&
        MKIMG_ROOT=$T/fresh "$MKIMG" build -q -f "$df" -t "$1" "$ctx" >/dev/null || return 1
    t_same_layers "$MKIMG_ROOT" "$T/fresh" "$1" 2
}
# Files the commit opened for reading: by the build's own process (the copy runs in a child,
# and opens the sources it copies by the same names).
commit_reads() {
    grep -E 'openat\([0-9]+, "(f[0-9]+|g[0-9]|h[12])", O_RDONLY\|O_NOFOLLOW(\|O_NOATIME)?\|O_CLOEXEC\)' "$T/trace" |
        awk -v m="$(head -n 1 "$T/trace" | awk '{print $1}')" '$1 == m' | wc -l
}

echo "changed 17" >"$ctx/tree/a/f17"
rm "$ctx/tree/c/gone"
echo new >"$ctx/tree/c/new"
chmod 0600 "$ctx/tree/a/f13"
touch -d '2002-03-04 05:06:07' "$ctx/tree/b/g2"
t_ok "a rebuild after changes has a clean build's layers" same_as_clean rc2
n=$(commit_reads)
# Changed: f17, f13, g2, the pair's first name (a copy of a file with two links is never
# a link to the last build's).
t_ok "the commit reads the changed files only ($n opens for 96 files)" test "$n" -le 4

idx=$(ls -t "$MKIMG_ROOT/tar-index" | head -n 1)
echo "changed 18" >"$ctx/tree/a/f18"
printf 'x' | dd of="$MKIMG_ROOT/tar-index/$idx" bs=1 seek=200 conv=notrunc status=none
t_ok "a corrupt index: still a clean build's layers" same_as_clean rc3

# An index whose digest holds but whose records of two files of the same size, mode and
# mtime point at each other's entries.
python3 - "$MKIMG_ROOT/tar-index" <<'PY'
import hashlib, os, struct, sys
d = sys.argv[1]
for name in os.listdir(d):
    p = os.path.join(d, name)
    b = bytearray(open(p, "rb").read())
    m = len(b"mkimg-tar-index-1\n")
    n, plen = struct.unpack_from("=QQ", b, m + 72 + 24)
    recs = m + 72 + 40
    paths = recs + 72 * n
    def path(i):
        ln, off = struct.unpack_from("=IQ", b, recs + 72 * i + 60)
        return bytes(b[paths + off:paths + off + ln])
    idx = {path(i): i for i in range(n)}
    for x, y in ((b"data/a/f20", b"data/a/f21"),):
        if x in idx and y in idx:
            ox = recs + 72 * idx[x] + 24
            oy = recs + 72 * idx[y] + 24
            b[ox:ox + 8], b[oy:oy + 8] = b[oy:oy + 8], b[ox:ox + 8]
    body = bytes(b[:-72])
    b[-72:] = ("sha256:" + hashlib.sha256(body).hexdigest()).encode() + b"\0"
    open(p, "wb").write(b)
PY
echo "changed 19" >"$ctx/tree/a/f19"
t_ok "an index whose entries are not where it says: still a clean build's layers" same_as_clean rc4
n=$(commit_reads)
t_ok "and the files were read instead ($n opens)" test "$n" -ge 90

rm -rf "$MKIMG_ROOT/tar-index"
echo "changed 22" >"$ctx/tree/a/f22"
t_ok "no index: a clean build's layers" same_as_clean rc5
t_ok "which writes the index again" test -n "$(ls "$MKIMG_ROOT/tar-index")"
echo "changed 23" >"$ctx/tree/a/f23"
t_ok "and the next rebuild uses it" same_as_clean rc6
n=$(commit_reads)
t_ok "reading the changed files only ($n opens)" test "$n" -le 2

df=$ctx/Dockerfile.own
t_ok "--chown and --chmod: first build" "$MKIMG" build -q -f "$df" -t rc7 "$ctx"
echo "changed 24" >"$ctx/tree/a/f24"
t_ok "a rebuild has a clean build's layers" same_as_clean rc8
n=$(commit_reads)
t_ok "reading the changed files only ($n opens)" test "$n" -le 2
t_ok "the store checks out" "$MKIMG" fsck
t_ok "prune drops the indexes" "$MKIMG" prune
t_ok "all of them" test ! -e "$MKIMG_ROOT/tar-index"
t_done
