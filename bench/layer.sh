#!/usr/bin/env bash
# bench/layer.sh - issue 4's store figures, side by side with the command-line tools:
#   layer creation from a 1 GiB tree of many files and from one 1 GiB file (mkimg's tar+hash
#   to a file, fsynced, vs `tar -c | tee FILE | sha256sum` + sync), and compression of that
#   layer (mkimg save vs gzip, pigz, zstd -T0), with peak RSS. Prints a table; asserts nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
lb=${LAYER_BENCH:-$top/build/bench/layer-bench}
mkimg=$top/mkimg
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/mkimg-layer-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
mb=${LAYER_MB:-1024}
mkdir -p "$work/many" "$work/big"
files=$((mb * 16)) # 64 KiB each
for i in $(seq 0 $((files / 256 - 1))); do
    d=$work/many/d$i; mkdir -p "$d"
    for j in $(seq 0 255); do head -c 65536 /dev/urandom >"$d/f$j"; done
done
head -c $((mb << 20)) /dev/urandom >"$work/big/file"
sync
t() { /usr/bin/time -f '%e %M' "$@" 2>"$work/time" >/dev/null; cat "$work/time" | tail -1; }
echo "| layer from | mkimg s | mkimg RSS MiB | tar-c-tee-sha256sum s | tar RSS MiB | ratio |"
echo "|---|---|---|---|---|---|"
for tree in many big; do
    read -r ms mk <<<"$(t "$lb" "$work/$tree" "$work/out.tar")"
    rm -f "$work/out.tar"; sync
    read -r ts tk <<<"$(t bash -c "tar -C '$work/$tree' -cf - . | tee '$work/out2.tar' | sha256sum && sync '$work/out2.tar'")"
    printf '| %s (%d MiB) | %s | %d | %s | %d | %.2f |\n' "$tree" "$mb" "$ms" $((mk / 1024)) "$ts" $((tk / 1024)) "$(echo "$ms / $ts" | bc -l)"
    rm -f "$work/out2.tar"
done
# Compression of the one-big-file layer: mkimg save vs the CLI tools on the same tar.
export MKIMG_ROOT=$work/store
"$mkimg" import "$work/big" big:latest >/dev/null
layer=$("$mkimg" inspect big | jq -r '.[0].RootFS.Layers[0]')
blob=$MKIMG_ROOT/blobs/sha256/${layer#sha256:}
echo
echo "| compression of $mb MiB | seconds | peak RSS MiB |"
echo "|---|---|---|"
for c in gzip zstd; do
    read -r s k <<<"$(t "$mkimg" save --compression "$c" -o "$work/s.tar" big)"
    echo "| mkimg save --compression $c | $s | $((k / 1024)) |"
    "$mkimg" prune --all >/dev/null 2>&1 || true
    rm -f "$work/s.tar"
done
for tool in "gzip -6" "pigz -6" "zstd -3 -T0"; do
    command -v "${tool%% *}" >/dev/null || { echo "| $tool | n/a (not installed) | |"; continue; }
    read -r s k <<<"$(t bash -c "$tool -c '$blob' > '$work/c.out'")"
    echo "| $tool | $s | $((k / 1024)) |"
    rm -f "$work/c.out"
done
