#!/usr/bin/env bash
# One big layer compressed on all cores (gzip in independent blocks, zstd with libzstd's
# workers): the result is read back by gzip(1), zstd(1), skopeo and umoci (Go readers) and
# is the same on every run; --compression-level is honoured.
. "$(dirname "$0")/../lib/test-lib.sh"

mkdir -p "$T/root/data"
# Text that compresses, noise that does not, and a file larger than many 128 KiB blocks.
seq 1 400000 >"$T/root/data/numbers"
# 9 MB of noise: gzip stores it, zstd writes a frame of raw blocks for most of it.
head -c 9000000 /dev/urandom >"$T/root/data/noise"
for i in $(seq 1 200); do echo "line $i of a small file" >"$T/root/data/f$i"; done
"$MKIMG" import "$T/root" big:1 >/dev/null
diff_id=$("$MKIMG" inspect big:1 | jq -r '.[0].RootFS.Layers[0]')

layer_blob() { # DIR: path of the layer blob of the one image in an OCI layout
    local m l
    m=$(jq -r '.manifests[0].digest' "$1/index.json")
    l=$(jq -r '.layers[0].digest' "$1/blobs/sha256/${m#sha256:}")
    echo "$1/blobs/sha256/${l#sha256:}"
}

for c in gzip zstd; do
    t_ok "$c: save to an OCI layout" "$MKIMG" save --format oci-dir --compression "$c" -o "$T/$c" big:1
    b=$(layer_blob "$T/$c")
    t_eq "$c: $c -dc gives the layer back" "sha256:$($c -dc "$b" | sha256sum | cut -d' ' -f1)" "$diff_id"
    t_ok "$c: $c -t accepts the stream" "$c" -q -t "$b"
    t_ok "$c: skopeo decompresses it (Go's reader)" \
        skopeo copy --dest-decompress "oci:$T/$c:big:1" "dir:$T/$c-dir"
    t_ok "$c: into the diff_id" test -e "$T/$c-dir/${diff_id#sha256:}"
done
t_ok "zstd: the noise is a frame of its own (raw blocks), between compressed ones" \
    test "$(zstd -l "$(layer_blob "$T/zstd")" | awk 'NR == 2 { print $1 }')" -ge 3
# Debian's umoci (0.4.7) reads no zstd layers.
t_ok "gzip: umoci unpacks it (Go's reader)" umoci unpack --rootless --image "$T/gzip:big:1" "$T/bundle"
t_ok "gzip: the same tree" diff -r "$T/root/data" "$T/bundle/rootfs/data"

# Deterministic: a fresh compression (cache dropped) gives the same bytes.
first=$(sha256sum <"$(layer_blob "$T/gzip")")
"$MKIMG" prune --all >/dev/null
"$MKIMG" save --format oci-dir --compression gzip -o "$T/gzip2" big:1
t_eq "gzip: the same bytes when compressed again" "$(sha256sum <"$(layer_blob "$T/gzip2")")" "$first"
zfirst=$(sha256sum <"$(layer_blob "$T/zstd")")
"$MKIMG" prune --all >/dev/null
"$MKIMG" save --format oci-dir --compression zstd -o "$T/zstd2" big:1
t_eq "zstd: the same bytes when compressed again" "$(sha256sum <"$(layer_blob "$T/zstd2")")" "$zfirst"

"$MKIMG" save --format oci-dir --compression gzip --compression-level 1 -o "$T/g1" big:1
"$MKIMG" save --format oci-dir --compression gzip --compression-level 9 -o "$T/g9" big:1
t_ok "gzip: level 9 is smaller than level 1" \
    test "$(stat -c %s "$(layer_blob "$T/g9")")" -lt "$(stat -c %s "$(layer_blob "$T/g1")")"
t_eq "gzip: level 1 reads back too" \
    "sha256:$(gzip -dc "$(layer_blob "$T/g1")" | sha256sum | cut -d' ' -f1)" "$diff_id"
t_eq "fsck is clean" "$("$MKIMG" fsck)" "store is clean"
t_done
