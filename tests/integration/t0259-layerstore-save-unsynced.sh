#!/usr/bin/env bash
# save -o is an export (docs/save.md): the archive is renamed into place whole but never
# fsynced, nor is writeback started for it (sync_file_range), in any format and compression;
# the layer blob compressed on the way hashes to the digest its name and manifest give (the
# output is hashed on a thread of its own while it is written).
. "$(dirname "$0")/../lib/test-lib.sh"
if ! command -v strace >/dev/null; then t_skip "strace is not installed"; t_done; exit 0; fi

mkdir -p "$T/root"
# Over 8 MiB compressed, so a writer that starts writeback as the output grows does it.
head -c 12000000 /dev/urandom >"$T/root/noise"
seq 1 300000 >"$T/root/numbers"
"$MKIMG" import "$T/root" un:1 >/dev/null
diff_id=$("$MKIMG" inspect un:1 | jq -r '.[0].RootFS.Layers[0]')

syncs_of() { # TRACE PATH-PART: sync calls on files whose path contains PATH-PART
    grep -E '(fsync|fdatasync|sync_file_range|syncfs)\(' "$1" | grep -cF "$2" || true
}
layer_ok() { # DIR: the layer blob hashes to the digest the manifest gives, decodes to diff_id
    local m l f
    m=$(jq -r '.manifests[0].digest' "$1/index.json")
    l=$(jq -r '.layers[0].digest' "$1/blobs/sha256/${m#sha256:}")
    f=$1/blobs/sha256/${l#sha256:}
    [ "sha256:$(sha256sum <"$f" | cut -d' ' -f1)" = "$l" ] || return 1
    case $(jq -r '.layers[0].mediaType' "$1/blobs/sha256/${m#sha256:}") in
    *gzip) d=$(gzip -dc "$f" | sha256sum | cut -d' ' -f1) ;;
    *zstd) d=$(zstd -dc "$f" | sha256sum | cut -d' ' -f1) ;;
    *) d=$(sha256sum <"$f" | cut -d' ' -f1) ;;
    esac
    [ "sha256:$d" = "$diff_id" ]
}

for c in none gzip zstd; do
    t_ok "$c: save -o under strace" strace -f -y -qq \
        -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$T/trace-$c" \
        "$MKIMG" save --compression "$c" -o "$T/out-$c.tar" un:1
    t_eq "$c: the archive is neither fsynced nor written back early" \
        "$(syncs_of "$T/trace-$c" "out-$c.tar")" 0
    t_eq "$c: nor its directory" "$(syncs_of "$T/trace-$c" "<$T>")" 0
    t_eq "$c: no temp file is left" "$(find "$T" -maxdepth 1 -name '.out-*' | wc -l)" 0
    mkdir -p "$T/x-$c" && tar -xf "$T/out-$c.tar" -C "$T/x-$c"
    t_ok "$c: the layer blob hashes to its digest and decodes to the diff_id" layer_ok "$T/x-$c"
    "$MKIMG" prune --all >/dev/null
done

t_ok "oci-dir: save under strace" strace -f -y -qq \
    -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$T/trace-dir" \
    "$MKIMG" save --format oci-dir --compression zstd -o "$T/dir" un:1
t_eq "oci-dir: no file or directory of the layout is fsynced" "$(syncs_of "$T/trace-dir" "$T/dir")" 0
t_ok "oci-dir: the layer blob hashes to its digest and decodes to the diff_id" layer_ok "$T/dir"

# Over an existing archive: the names are swapped and the old file unlinked (a plain rename
# over a file makes ext4 write the new one back first: seconds for a big archive).
echo old >"$T/over.tar"
t_ok "save -o over an existing file, under strace" strace -f -qq -e trace=rename,renameat,renameat2 \
    -o "$T/trace-over" "$MKIMG" save --compression zstd -o "$T/over.tar" un:1
t_grep "the names are swapped (RENAME_EXCHANGE)" 'RENAME_EXCHANGE' "$T/trace-over"
mkdir -p "$T/x-over" && tar -xf "$T/over.tar" -C "$T/x-over"
t_ok "the new archive is in place, whole" layer_ok "$T/x-over"
t_eq "the old file and the temp file are gone" "$(find "$T" -maxdepth 1 -name '.over*' | wc -l)" 0
t_ok "a symlink at the name is replaced, not followed" bash -c "ln -s '$T/over.tar' '$T/link.tar' &&
    '$MKIMG' save -o '$T/link.tar' un:1 && test ! -L '$T/link.tar' && test -s '$T/over.tar'"

# A device or a FIFO at the name is written to, not replaced: `save -o /dev/null` must not
# leave the archive where the null device was (a device of our own here, not the host's).
mknod "$T/null" c 1 3
t_ok "save -o a null device succeeds" "$MKIMG" save --compression zstd -o "$T/null" un:1
t_ok "the null device is still there, not a file" test -c "$T/null"
mkfifo "$T/pipe"
timeout 20 cat "$T/pipe" >"$T/piped.tar" &
reader=$!
t_ok "save -o a FIFO" "$MKIMG" save -o "$T/pipe" un:1
wait "$reader"
t_ok "its reader gets the whole archive" bash -c "tar -tf '$T/piped.tar' | grep -qx index.json"
t_ok "the FIFO stays a FIFO" test -p "$T/pipe"
timeout 20 cat "$T/pipe" >"$T/piped2.tar" &
reader=$!
t_ok "build -o type=tar,dest=FIFO" "$MKIMG" build -q -o "type=tar,dest=$T/pipe" - <<<'FROM un:1'
wait "$reader"
t_ok "its reader gets the rootfs tar" bash -c "tar -tf '$T/piped2.tar' | grep -q numbers"
t_ok "no temp file beside them" test -z "$(find "$T" -maxdepth 1 -name '.null.tmp*' -o -maxdepth 1 -name '.pipe.tmp*')"

# build -o type=tar (one platform, and two) is the same kind of export.
mkdir -p "$T/ctx" && printf 'FROM scratch\nCOPY numbers /n\n' >"$T/ctx/Dockerfile"
cp "$T/root/numbers" "$T/ctx/"
for p in "" "--platform linux/amd64,linux/arm64"; do
    # shellcheck disable=SC2086 # $p is empty or two words
    t_ok "build -o type=tar $p under strace" strace -f -y -qq \
        -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$T/trace-bt" \
        "$MKIMG" build $p -o "type=tar,dest=$T/bt.tar" "$T/ctx"
    t_eq "build -o type=tar $p: the tar is not fsynced" "$(syncs_of "$T/trace-bt" "bt.tar")" 0
    t_ok "build -o type=tar $p: the tar is whole" tar -tf "$T/bt.tar"
    rm -f "$T/bt.tar"
done

# Not vacuous: the trace does see fsyncs where mkimg makes them (a store blob of an import).
mkdir -p "$T/root2" && echo other >"$T/root2/f"
strace -f -y -qq -e trace=fsync,fdatasync,syncfs -o "$T/trace-import" \
    "$MKIMG" import "$T/root2" un:2 >/dev/null
t_ok "the trace sees the fsyncs of an import" \
    test "$(grep -cE '(fsync|fdatasync|syncfs)\(' "$T/trace-import")" -gt 0

t_done
