#!/usr/bin/env bash
# COPY from a context on another file system than the store: copy_file_range fails with EXDEV
# there (Linux >= 5.19), and is tried once for the pair of file systems, not once per file
# (issue 19: 20,000 failed calls for a COPY of 20,000 files). The bytes still arrive.
. "$(dirname "$0")/../lib/test-lib.sh"

ctx=$(mktemp -d /dev/shm/mkimg-crossfs-XXXXXX)
trap 'rm -rf "$ctx"; t_cleanup' EXIT
mkdir -p "$ctx/d" "$MKIMG_ROOT"
for i in $(seq 1 40); do echo "file $i" >"$ctx/d/f$i"; done
head -c 300000 /dev/urandom >"$ctx/d/big"
printf 'FROM scratch\nCOPY d /d\n' >"$ctx/Dockerfile"
if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
if [ "$(stat -c %d "$ctx")" = "$(stat -c %d "$MKIMG_ROOT")" ]; then
    t_skip "the context and the store are on the same file system"
    t_done
fi
t_ok "builds from a tmpfs context" strace -f -e trace=copy_file_range -o "$T/trace" \
    "$MKIMG" build -q -t crossfs "$ctx"
exdev=$(grep -c EXDEV "$T/trace" || true)
t_ok "copy_file_range fails with EXDEV at most once for 41 files (got $exdev)" test "$exdev" -le 1
umoci unpack --image "$MKIMG_ROOT:crossfs:latest" "$T/out" >/dev/null 2>&1
t_ok "the files arrive whole" diff -r "$ctx/d" "$T/out/rootfs/d"
t_done
