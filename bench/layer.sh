#!/usr/bin/env bash
# bench/layer.sh - issue 4's store figures, side by side with the command-line tools:
#   layer creation from a 1 GiB tree of many files and from one 1 GiB file (mkimg's tar+hash
#   to a file, fsynced, vs `tar -c | tee FILE | sha256sum` + sync), and compression of that
#   layer of mixed content (mkimg save vs gzip, pigz, zstd -T0), with peak RSS and ratios.
#   Prints tables; asserts nothing. LAYER_MB=N sizes the data, LAYER_ONLY=compress skips the
#   layer creation part.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
lb=${LAYER_BENCH:-$top/build/bench/layer-bench}
mkimg=$top/mkimg
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/mkimg-layer-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
mb=${LAYER_MB:-1024}
only=${LAYER_ONLY:-all} # "compress": only the compression table
t() { /usr/bin/time -f '%e %M' "$@" 2>"$work/time" >/dev/null; cat "$work/time" | tail -1; }
mkdir -p "$work/many" "$work/big"
if [ "$only" != compress ]; then
files=$((mb * 16)) # 64 KiB each
for i in $(seq 0 $((files / 256 - 1))); do
    d=$work/many/d$i; mkdir -p "$d"
    for j in $(seq 0 255); do head -c 65536 /dev/urandom >"$d/f$j"; done
done
head -c $((mb << 20)) /dev/urandom >"$work/big/file"
sync
echo "| layer from | mkimg s | mkimg RSS MiB | tar-c-tee-sha256sum s | tar RSS MiB | ratio |"
echo "|---|---|---|---|---|---|"
for tree in many big; do
    read -r ms mk <<<"$(t "$lb" "$work/$tree" "$work/out.tar")"
    rm -f "$work/out.tar"; sync
    read -r ts tk <<<"$(t bash -c "tar -C '$work/$tree' -cf - . | tee '$work/out2.tar' | sha256sum && sync '$work/out2.tar'")"
    printf '| %s (%d MiB) | %s | %d | %s | %d | %.2f |\n' "$tree" "$mb" "$ms" $((mk / 1024)) "$ts" $((tk / 1024)) "$(echo "$ms / $ts" | bc -l)"
    rm -f "$work/out2.tar"
done
fi
# Compression: one layer of mixed real content (binaries, libraries, text from /usr, which
# compresses about 3:1), by mkimg save (compression on all cores, then the archive written)
# and by the command-line tools on the same tar. A second, cached save shows what the archive
# alone costs.
export MKIMG_ROOT=$work/store
mkdir -p "$work/mixed"
tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c $((mb << 20)) >"$work/mixed/file" || true
"$mkimg" import "$work/mixed" mixed:latest >/dev/null
layer=$("$mkimg" inspect mixed | jq -r '.[0].RootFS.Layers[0]')
blob=$MKIMG_ROOT/blobs/sha256/${layer#sha256:}
size() { stat -c %s "$1"; }
echo
echo "| compression of $mb MiB ($(nproc) cores) | seconds | peak RSS MiB | output MiB |"
echo "|---|---|---|---|"
declare -A secs rss
for c in gzip zstd; do
    read -r s k <<<"$(t "$mkimg" save --compression "$c" -o "$work/s.tar" mixed)"
    secs[mkimg-$c]=$s; rss[mkimg-$c]=$k
    echo "| mkimg save --compression $c | $s | $((k / 1024)) | $(($(size "$work/s.tar") >> 20)) |"
    read -r s2 k2 <<<"$(t "$mkimg" save --compression "$c" -o "$work/s.tar" mixed)"
    echo "| (same save again, cached: archive only) | $s2 | $((k2 / 1024)) | |"
    "$mkimg" prune --all >/dev/null 2>&1 || true
    rm -f "$work/s.tar"
done
for tool in "gzip -6" "pigz -6" "zstd -3 -T0"; do
    command -v "${tool%% *}" >/dev/null || { echo "| $tool | n/a (not installed) | | |"; continue; }
    read -r s k <<<"$(t bash -c "$tool -c '$blob' > '$work/c.out'")"
    secs[$tool]=$s; rss[$tool]=$k
    echo "| $tool | $s | $((k / 1024)) | $(($(size "$work/c.out") >> 20)) |"
    rm -f "$work/c.out"
done
echo
echo "| mkimg / tool | time ratio | peak RSS ratio |"
echo "|---|---|---|"
for pair in "gzip:gzip -6" "gzip:pigz -6" "zstd:zstd -3 -T0"; do
    m=mkimg-${pair%%:*} tool=${pair#*:}
    [ -n "${secs[$tool]:-}" ] || continue
    printf '| mkimg %s / %s | %.2f | %.2f |\n' "${pair%%:*}" "$tool" \
        "$(echo "${secs[$m]} / ${secs[$tool]}" | bc -l)" "$(echo "${rss[$m]} / ${rss[$tool]}" | bc -l)"
done
