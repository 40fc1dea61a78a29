#!/usr/bin/env bash
# save compresses a layer with no cached copy straight into the archive (one pass, nothing
# left in the store): into a tar written to a regular file, the entry's header rewritten once
# its digest and size are known; into an OCI layout under a temp name renamed to the digest.
# The archive is the same bytes as one written through the store's copies (to a pipe), its
# blobs match their names, the layer is one gzip member / one zstd frame, skopeo reads it.
. "$(dirname "$0")/../lib/test-lib.sh"

mkdir -p "$T/root/data"
seq 1 200000 >"$T/root/data/numbers"
head -c 2000000 /dev/urandom >"$T/root/data/noise"
"$MKIMG" import "$T/root" big:1 >/dev/null
"$MKIMG" tag big:1 big:2
diff_id=$("$MKIMG" inspect big:1 | jq -r '.[0].RootFS.Layers[0]')

blobs_match_names() { # DIR: every blobs/sha256/X hashes to X
    local f bad=0
    for f in "$1"/blobs/sha256/*; do
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || bad=1
    done
    [ "$bad" = 0 ]
}
layer_of() { # DIR: the layer blob of the first image of an OCI layout
    local m l
    m=$(jq -r '.manifests[0].digest' "$1/index.json")
    l=$(jq -r '.layers[0].digest' "$1/blobs/sha256/${m#sha256:}")
    echo "$1/blobs/sha256/${l#sha256:}"
}
one_gzip_member() { # FILE
    python3 -c 'import sys, zlib
d = zlib.decompressobj(31); data = open(sys.argv[1], "rb").read(); d.decompress(data)
sys.exit(0 if d.eof and d.unused_data == b"" else 1)' "$1"
}

for c in gzip zstd; do
    t_ok "$c: save two names of one image to a file" \
        "$MKIMG" save --compression "$c" -o "$T/$c.tar" big:1 big:2
    t_eq "$c: no compressed copy is left in the store" \
        "$("$MKIMG" df | awk '/^compressed copies/ {print $3}')" 0
    t_eq "$c: every entry once" "$(tar -tf "$T/$c.tar" | sort | uniq -d)" ""
    mkdir -p "$T/$c-x" && tar -xf "$T/$c.tar" -C "$T/$c-x"
    t_ok "$c: every blob matches its name" blobs_match_names "$T/$c-x"
    b=$(layer_of "$T/$c-x")
    t_eq "$c: the layer decodes to its diff_id" \
        "sha256:$($c -dc "$b" | sha256sum | cut -d' ' -f1)" "$diff_id"
    if [ "$c" = gzip ]; then
        t_ok "gzip: the layer is one gzip member" one_gzip_member "$b"
    else
        t_eq "zstd: the layer is one zstd frame" \
            "$(zstd -lv "$b" 2>/dev/null | awk -F: '/Zstandard Frames/ {gsub(/ /, "", $2); print $2}')" 1
    fi
    t_ok "$c: skopeo copies it (checking every digest)" \
        skopeo copy "oci-archive:$T/$c.tar:big:1" "oci:$T/$c-sk:x"
    # To stdout at an offset of a regular file: the header goes where the entry starts.
    { head -c 1000 /dev/zero; "$MKIMG" save --compression "$c" big:1 big:2; } >"$T/$c-off.tar"
    t_eq "$c: to stdout after other bytes, the same archive" \
        "$(tail -c +1001 "$T/$c-off.tar" | cmp - "$T/$c.tar" && echo same)" same
    # Through a pipe the store's copy is made, then copied in: the same bytes.
    "$MKIMG" save --compression "$c" big:1 big:2 | cat >"$T/$c-pipe.tar"
    t_eq "$c: through a pipe (the cached copy), the same archive" \
        "$(cmp "$T/$c-pipe.tar" "$T/$c.tar" && echo same)" same
    t_ok "$c: with the copy cached, saved to a file again" \
        "$MKIMG" save --compression "$c" -o "$T/$c-2.tar" big:1 big:2
    t_eq "$c: the same archive" "$(cmp "$T/$c-2.tar" "$T/$c.tar" && echo same)" same
    "$MKIMG" prune --all >/dev/null
done

t_ok "zstd: save to an OCI layout" \
    "$MKIMG" save --format oci-dir --compression zstd -o "$T/zdir" big:1
t_ok "zstd: every blob of the layout matches its name" blobs_match_names "$T/zdir"
t_eq "zstd: no temp file is left in the layout" \
    "$(find "$T/zdir" -name '.*' | wc -l)" 0
t_eq "zstd: no compressed copy is left in the store" \
    "$("$MKIMG" df | awk '/^compressed copies/ {print $3}')" 0
t_ok "zstd: skopeo copies the layout" skopeo copy "oci:$T/zdir:big:1" "oci:$T/zsk:x"

t_done
