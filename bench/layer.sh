#!/usr/bin/env bash
# bench/layer.sh - issue 4's store figures, side by side with the command-line tools:
#   layer creation from a 1 GiB tree of many files and from one 1 GiB file (mkimg's tar+hash
#   to a file, fsynced, vs `tar -c | tee FILE | sha256sum` + sync), and compression and push of
#   a layer of mixed content and of a layer of random bytes (mkimg save, its compressor alone
#   and mkimg push vs gzip, pigz, zstd -T0 and skopeo copy), with peak RSS and ratios.
#   Prints tables; asserts nothing. LAYER_MB=N sizes the data, LAYER_ONLY=compress skips the
#   layer creation part, BENCH_TMP=DIR puts the data on the file system to measure.
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
# Compression and push, each on two 1 GiB layers: mixed real content (binaries, libraries,
# text from /usr, ~2.4:1) and random bytes (the bigfile workload: nothing to gain). All in one
# run, side by side, on the same files:
#   - mkimg save with no cached copy (compress into the store, fsync it, make the archive,
#     fsync it), then again with the copy cached (the archive alone);
#   - the compressor alone (layer-bench compress: compress-stream.c to a file, no fsync),
#     against gzip -6, pigz -6 and zstd -3 -T0 writing a file from the same tar;
#   - push to a fresh loopback registry: skopeo copy from mkimg's store (an OCI layout) with
#     --dest-compress-format, against mkimg push with no cached copy.
export MKIMG_ROOT=$work/store
mkdir -p "$work/mixed" "$work/random"
tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c $((mb << 20)) >"$work/mixed/file" || true
head -c $((mb << 20)) /dev/urandom >"$work/random/file"
declare -A secs rss outsz blob
for l in mixed random; do
    "$mkimg" import "$work/$l" "$l:latest" >/dev/null
    d=$("$mkimg" inspect "$l" | jq -r '.[0].RootFS.Layers[0]')
    blob[$l]=$MKIMG_ROOT/blobs/sha256/${d#sha256:}
done
size() { stat -c %s "$1"; }
# Each timed command starts with the page cache written back, and compressed copies pruned.
fresh() { "$mkimg" prune --all >/dev/null 2>&1 || true; rm -f "$work/out"; sync; }
run() { # KEY CMD... : times CMD, keeps seconds, RSS and the size of $work/out if any
    local key=$1 s k
    shift
    fresh
    read -r s k <<<"$(t "$@")"
    secs[$key]=$s rss[$key]=$k outsz[$key]=$(size "$work/out" 2>/dev/null || echo 0)
}
reg_pid=
start_registry() {
    stop_registry
    rm -rf "$work/registry"
    reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$work/registry" "$reg_port" >"$work/registry.yml"
    docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
    reg_pid=$!
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "layer.sh: the loopback registry did not start" >&2
    return 1
}
stop_registry() { [ -z "$reg_pid" ] || { kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true; }; reg_pid=; }
trap 'stop_registry; rm -rf "$work"' EXIT
have_push=$(command -v docker-registry >/dev/null && command -v skopeo >/dev/null && echo yes || true)
for l in mixed random; do
    b=${blob[$l]}
    for c in gzip zstd; do
        run "$l save $c" "$mkimg" save --compression "$c" -o "$work/out" "$l"
        rm -f "$work/out"; sync # the copy stays cached
        read -r s k <<<"$(t "$mkimg" save --compression "$c" -o "$work/out" "$l")"
        secs["$l save $c cached"]=$s rss["$l save $c cached"]=$k
        lvl=6; [ "$c" = zstd ] && lvl=3
        run "$l stream $c" "$lb" compress "$c" "$lvl" "$(nproc)" "$b" "$work/out"
    done
    for tool in "gzip -6" "pigz -6" "zstd -3 -T0"; do
        command -v "${tool%% *}" >/dev/null || continue
        run "$l $tool" bash -c "$tool -c '$b' >'$work/out'"
    done
    [ -n "$have_push" ] || continue
    for c in gzip zstd; do
        start_registry
        run "$l push $c skopeo" skopeo copy -q --dest-tls-verify=false --dest-compress-format "$c" \
            "oci:$MKIMG_ROOT:$l:latest" "docker://127.0.0.1:$reg_port/bench/$l:latest"
        start_registry
        run "$l push $c" "$mkimg" push -q --compression-format "$c" "$l" \
            "127.0.0.1:$reg_port/bench/$l:latest"
    done
    stop_registry
done
rm -f "$work/out"
echo
echo "| $mb MiB layer ($(nproc) cores) | what | seconds | peak RSS MiB | output MiB |"
echo "|---|---|---|---|---|"
row() { # LAYER KEY WHAT
    local key="$1 $2"
    [ -n "${secs[$key]:-}" ] || return 0
    local o=${outsz[$key]:-0}
    printf '| %s | %s | %s | %d | %s |\n' "$1" "$3" "${secs[$key]}" $((rss[$key] / 1024)) \
        "$([ "$o" -gt 0 ] && echo "$((o >> 20)) ($o bytes)" || true)"
}
for l in mixed random; do
    for c in gzip zstd; do
        row "$l" "save $c" "mkimg save --compression $c (no cached copy)"
        row "$l" "save $c cached" "mkimg save --compression $c (copy cached: the archive alone)"
        row "$l" "stream $c" "mkimg's $c compressor alone (layer-bench compress, to a file)"
    done
    for tool in "gzip -6" "pigz -6" "zstd -3 -T0"; do row "$l" "$tool" "$tool"; done
    for c in gzip zstd; do
        row "$l" "push $c" "mkimg push --compression-format $c (no cached copy)"
        row "$l" "push $c skopeo" "skopeo copy --dest-compress-format $c"
    done
done
echo
echo "| layer | mkimg / peer | time ratio | peak RSS ratio |"
echo "|---|---|---|---|"
ratio() { # LAYER MKIMG-KEY PEER-KEY
    local m="$1 $2" p="$1 $3"
    [ -n "${secs[$m]:-}" ] && [ -n "${secs[$p]:-}" ] || return 0
    printf '| %s | %s / %s | %.2f | %.2f |\n' "$1" "$2" "$3" \
        "$(echo "${secs[$m]} / ${secs[$p]}" | bc -l)" "$(echo "${rss[$m]} / ${rss[$p]}" | bc -l)"
}
for l in mixed random; do
    ratio "$l" "save gzip" "gzip -6"
    ratio "$l" "save gzip" "pigz -6"
    ratio "$l" "stream gzip" "pigz -6"
    ratio "$l" "save zstd" "zstd -3 -T0"
    ratio "$l" "stream zstd" "zstd -3 -T0"
    ratio "$l" "push gzip" "push gzip skopeo"
    ratio "$l" "push zstd" "push zstd skopeo"
done
