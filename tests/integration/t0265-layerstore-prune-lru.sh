#!/usr/bin/env bash
# prune --keep-storage: what may go goes least recently used first, until the store fits.
. "$(dirname "$0")/../lib/test-lib.sh"

has_blob() { test -e "$MKIMG_ROOT/blobs/sha256/${1#sha256:}"; }
# The store's size as prune measures it (a limit nothing is over removes nothing).
store_size() { "$MKIMG" prune --keep-storage 1TB | sed -n 's/^store size .* (\([0-9]*\) bytes)$/\1/p'; }

t_import_busybox
base_layer=$("$MKIMG" inspect busybox | jq -r '.[0].RootFS.Layers[0]')
for n in a b c; do
    mkdir -p "$T/$n"
    printf 'FROM busybox\nRUN head -c 3000000 /dev/urandom >/big-%s\n' "$n" >"$T/$n/Dockerfile"
    "$MKIMG" build -q -t "img-$n" "$T/$n" >/dev/null 2>"$T/err" || cat "$T/err"
    eval "layer_$n=\$(\"\$MKIMG\" inspect img-$n | jq -r '.[0].RootFS.Layers[1]')"
done
t_ok "three images with a 3 MB layer each" has_blob "$layer_c"
for n in a b c; do "$MKIMG" rmi "img-$n" >/dev/null; done
# a is used again (a cache hit), so b is now the least recently used, then c.
"$MKIMG" build -t img-a "$T/a" >"$T/out" 2>&1
t_grep "a's layer comes from the cache" '=> CACHED' "$T/out"
"$MKIMG" rmi img-a >/dev/null

chain_b=$(printf '%s %s' "$base_layer" "$layer_b" | sha256sum | cut -d' ' -f1)
t_ok "b's snapshot is there before the prune" test -d "$MKIMG_ROOT/snapshots/$chain_b"
s0=$(store_size)
t_ok "prune --keep-storage above the store size removes nothing" \
    test "$("$MKIMG" prune --keep-storage "$((s0 + 4096))" | head -1)" = \
    "removed 0 blobs, 0 snapshots, 0 cache entries; freed 0.0 MB"

# Each layer is a 3 MB blob and a 3 MB snapshot; 1.5 MB below takes b's layer, and a layer's
# blob and snapshot go together.
"$MKIMG" prune --keep-storage "$((s0 - 1500000))" >"$T/out"
t_grep "prune reports the size it got to" '^store size [0-9.]+ MB \([0-9]+ bytes\)$' "$T/out"
got=$(sed -n 's/^store size .* (\([0-9]*\) bytes)$/\1/p' "$T/out")
t_ok "the store is at or under the limit" test "$got" -le "$((s0 - 1500000))"
t_ok "the least recently used layer (b) is gone" test ! -e "$MKIMG_ROOT/blobs/sha256/${layer_b#sha256:}"
t_ok "with its snapshot" test ! -e "$MKIMG_ROOT/snapshots/$chain_b"
t_ok "c stays" has_blob "$layer_c"
t_ok "a, used last, stays" has_blob "$layer_a"
t_eq "fsck is clean" "$("$MKIMG" fsck)" "store is clean"

"$MKIMG" prune --keep-storage "$((s0 - 10500000))B" >/dev/null
t_ok "next, c is gone" test ! -e "$MKIMG_ROOT/blobs/sha256/${layer_c#sha256:}"
t_ok "a still stays" has_blob "$layer_a"
t_ok "the base image is never touched" has_blob "$base_layer"
t_eq "fsck is clean" "$("$MKIMG" fsck)" "store is clean"
"$MKIMG" build -t img-a "$T/a" >"$T/out" 2>&1
t_grep "a's layer, snapshot and cache entry are whole: a rebuild is cached" '=> CACHED' "$T/out"
"$MKIMG" build -t img-c "$T/c" >"$T/out" 2>&1
t_fails "c's cache entry went with its layer" grep -q '=> CACHED' "$T/out"

# Now a and c are tagged: even a limit of 0 removes nothing they need.
"$MKIMG" prune --keep-storage 0 >"$T/out"
t_grep "a limit of 0 removes all that may go" '^removed [0-9]+ blobs' "$T/out"
t_ok "a tagged image's layer stays" has_blob "$layer_a"
t_ok "so does the base" has_blob "$base_layer"
t_ok "a tagged image still saves" "$MKIMG" save -o "$T/a.tar" img-a
t_eq "fsck is clean" "$("$MKIMG" fsck)" "store is clean"
t_eq "and nothing more may go" "$("$MKIMG" prune)" \
    "removed 0 blobs, 0 snapshots, 0 cache entries; freed 0.0 MB"

for s in 500MB 2GiB 1.5g 4096 10kib; do
    t_ok "size \"$s\" is accepted" "$MKIMG" prune -q --keep-storage "$s"
done
"$MKIMG" prune --keep-storage 12XB >/dev/null 2>"$T/err"; rc=$?
t_eq "a bad size is a usage error" "$rc" 2
t_eq "that names it" "$(cat "$T/err")" \
    'mkimg: prune: invalid size "12XB" (e.g. 500MB, 2GiB, 1048576)'
t_grep "--help says what may go" 'least recently used' <("$MKIMG" prune --help)
t_done
