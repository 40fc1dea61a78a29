#!/usr/bin/env bash
# A step's layer tar is hashed and written by threads of their own, in 1 MiB slots, and its
# writeback is started every 8 MiB (sync_file_range), so that the blob's fsync finds most of
# it on disk (issue 19: 1 GiB COPY spent 1.6 s in that fsync). A layer of many slots keeps
# its bytes: the blob hashes to its digest and unpacks to the context's files.
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
ctx=$T/ctx
mkdir -p "$ctx/d"
head -c $((20 * 1024 * 1024 + 123)) /dev/urandom >"$ctx/d/big"
for i in $(seq 1 30); do head -c $((i * 997)) /dev/urandom >"$ctx/d/f$i"; done
printf 'FROM scratch\nCOPY d /d\n' >"$ctx/Dockerfile"
t_ok "builds" strace -f -e trace=sync_file_range -o "$T/trace" "$MKIMG" build -q -t wb "$ctx"
n=$(grep -c 'sync_file_range(' "$T/trace" || true)
t_ok "writeback of the layer started early ($n sync_file_range calls)" test "$n" -ge 1
umoci unpack --image "$MKIMG_ROOT:wb:latest" "$T/out" >/dev/null 2>&1
t_ok "the files arrive whole" diff -r "$ctx/d" "$T/out/rootfs/d"
ok=1
for b in "$MKIMG_ROOT"/blobs/sha256/*; do
    [ "$(sha256sum <"$b" | cut -d' ' -f1)" = "$(basename "$b")" ] || ok=0
done
t_ok "every blob hashes to its name" test "$ok" = 1
t_done
