#!/usr/bin/env bash
# COPY sets a regular file's owner, mode, xattrs and times through the file it just wrote, and
# resolves a directory's path in the root once for all its files (issue 19: ~30 syscalls per
# file before, most of them path lookups through the overlay). Counted with strace: fchownat
# and fchmodat (by name) are left for directories, symlinks and fifos.
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
ctx=$T/ctx
mkdir -p "$ctx/d/sub"
for i in $(seq 1 40); do echo "file $i" >"$ctx/d/f$i"; done
for i in $(seq 1 10); do echo "sub $i" >"$ctx/d/sub/g$i"; done
chmod 0751 "$ctx/d/f7"
touch -d '2001-02-03 04:05:06' "$ctx/d/f9"
printf 'FROM scratch\nCOPY --chown=12:34 d /d\n' >"$ctx/Dockerfile"
t_ok "builds" strace -f -e trace=fchownat,fchmodat -o "$T/trace" "$MKIMG" build -q -t byfd "$ctx"
n=$(grep -cE '^[0-9]+ +fchmodat\(' "$T/trace" || true)
t_ok "fchmodat by name at most 5 times for 50 files (got $n)" test "$n" -le 5
n=$(grep -cE '^[0-9]+ +fchownat\(' "$T/trace" || true)
t_ok "fchownat by name at most 5 times for 50 files (got $n)" test "$n" -le 5
umoci unpack --image "$MKIMG_ROOT:byfd:latest" "$T/out" >/dev/null 2>&1
t_ok "the files arrive whole" diff -r "$ctx/d" "$T/out/rootfs/d"
t_ok "modes are kept" test "$(stat -c %a "$T/out/rootfs/d/f7")" = 751
t_ok "mtimes are kept" test "$(stat -c %Y "$T/out/rootfs/d/f9")" = "$(stat -c %Y "$ctx/d/f9")"
t_ok "owners are set" test "$(stat -c %u:%g "$T/out/rootfs/d/sub/g3")" = 12:34

# Files are created first and looked at only when something is in the way: an earlier file
# or symlink of that name is replaced.
ctx2=$T/ctx2
mkdir -p "$ctx2/new"
echo new >"$ctx2/new/f"
echo new >"$ctx2/new/l"
printf 'FROM scratch\nCOPY d /d\nCOPY new/f /d/f1\nCOPY new/l /d/sub/g4\n' >"$ctx2/Dockerfile"
mkdir -p "$ctx2/d/sub"
echo old >"$ctx2/d/f1"
ln -s ../f1 "$ctx2/d/sub/g4"
t_ok "copies over a file and a symlink" "$MKIMG" build -q -t byfd2 "$ctx2"
umoci unpack --image "$MKIMG_ROOT:byfd2:latest" "$T/out2" >/dev/null 2>&1
t_ok "the file is replaced" test "$(cat "$T/out2/rootfs/d/f1")" = new
t_ok "the symlink is replaced by a file" test -f "$T/out2/rootfs/d/sub/g4" -a ! -L "$T/out2/rootfs/d/sub/g4"
t_done
