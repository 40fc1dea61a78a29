#!/usr/bin/env bash
# bench/transfer.sh - issue 19's compression and push rows with repetitions: on a 1 GiB layer
# of random bytes and one of mixed content (a tar of /usr), `mkimg save` with no cached copy
# against `zstd -T0 -3` and `pigz -6` on the same layer, `mkimg push` against `skopeo copy`
# to a fresh loopback registry each time, and `mkimg pull` of the layer pushed gzip / zstd by
# skopeo (into a fresh store, unpacked) against `skopeo copy` into a fresh containers-storage
# (overlay driver, its own root on the loop fs, as bench/run.sh: unpacked too) and, second peer,
# into a fresh OCI layout (not unpacked), alternating, REPS times (default 3). OLD_MKIMG=PATH
# adds another mkimg build (the code before a change) to the same alternation. Stores,
# registry and outputs on a journaled ext4 loop file (bench/loopfs.sh). Prints medians and
# ratios (median of each side); asserts nothing. LAYER_MB sizes the layers; ROWS=pull (or
# save, push) runs only those rows.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
old=${OLD_MKIMG:-}
reps=${REPS:-3}
mb=${LAYER_MB:-1024}
rows=${ROWS:-save push pull}
want() { [[ " $rows " == *" $1 "* ]]; }
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
. "$top/bench/loopfs.sh"
loopfs_setup mkimg-transfer $(((mb * 12 >> 10) + 3))G
export MKIMG_ROOT=$mnt/store
mkdir -p "$work/mixed" "$work/random"
tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c $((mb << 20)) >"$work/mixed/file" || true
head -c $((mb << 20)) /dev/urandom >"$work/random/file"
declare -A blob
for l in mixed random; do
    "$mkimg" import "$work/$l" "$l:latest" >/dev/null
    d=$("$mkimg" inspect "$l" | jq -r '.[0].RootFS.Layers[0]')
    blob[$l]=$MKIMG_ROOT/blobs/sha256/${d#sha256:}
    rm -rf "${work:?}/$l"
done
# A fresh loopback registry (tests/lib/registry.sh), its storage on the loop file system.
T=$mnt
. "$top/tests/lib/registry.sh"
stop_registry() { reg_stop 2>/dev/null || true; }
start_registry() {
    stop_registry
    rm -rf "$mnt/reg-push"
    reg_start push >&2 || { echo "transfer.sh: the loopback registry did not start" >&2; return 1; }
    reg_port=${REG##*:}
}
trap 'stop_registry; umount_under "$mnt"; rm -rf "$work"' EXIT
declare -A times
tim() { # KEY CMD... : one timed run, the compressed copies pruned and the fs synced first
    "$mkimg" prune --all >/dev/null 2>&1 || true
    rm -f "$mnt/out"
    times[$1]+="$(run "$@") "
}
mk_variants=(new)
[ -z "$old" ] || mk_variants+=(old)
for rep in $(seq 1 "$reps"); do
    for l in random mixed; do
        b=${blob[$l]}
        if want save; then
        tim "$l zstd-cli" bash -c "zstd -q -T0 -3 -c '$b' >'$mnt/out'"
        for v in "${mk_variants[@]}"; do
            m=$mkimg; [ "$v" = old ] && m=$old
            tim "$l save-zstd $v" "$m" save --compression zstd -o "$mnt/out" "$l"
        done
        tim "$l pigz" bash -c "pigz -6 -c '$b' >'$mnt/out'"
        for v in "${mk_variants[@]}"; do
            m=$mkimg; [ "$v" = old ] && m=$old
            tim "$l save-gzip $v" "$m" save --compression gzip -o "$mnt/out" "$l"
        done
        fi
        want push && for c in gzip zstd; do
            start_registry
            tim "$l push-$c skopeo" skopeo copy -q --dest-tls-verify=false --dest-compress-format "$c" \
                "oci:$MKIMG_ROOT:$l:latest" "docker://127.0.0.1:$reg_port/bench/$l:latest"
            for v in "${mk_variants[@]}"; do
                m=$mkimg; [ "$v" = old ] && m=$old
                start_registry
                tim "$l push-$c $v" "$m" push -q --compression-format "$c" "$l" \
                    "127.0.0.1:$reg_port/bench/$l:latest"
            done
        done
        want pull || continue
        # Pulls of the layer compressed by skopeo, into a fresh store (mkimg, unpacked), a fresh
        # containers-storage (skopeo, overlay, unpacked) or a fresh OCI layout (skopeo, not
        # unpacked).
        start_registry
        for c in gzip zstd; do
            skopeo copy -q --dest-tls-verify=false --dest-compress-format "$c" \
                "oci:$MKIMG_ROOT:$l:latest" "docker://127.0.0.1:$reg_port/bench/$l-$c:latest" >/dev/null
        done
        for c in gzip zstd; do
            rm -rf "$mnt/pull"
            tim "$l pull-$c skopeo" skopeo copy -q --src-tls-verify=false \
                "docker://127.0.0.1:$reg_port/bench/$l-$c:latest" "oci:$mnt/pull:x"
            umount_under "$mnt/skpull"
            rm -rf "$mnt/skpull"
            tim "$l pull-$c skopeo-cs" skopeo copy -q --src-tls-verify=false \
                "docker://127.0.0.1:$reg_port/bench/$l-$c:latest" \
                "containers-storage:[overlay@$mnt/skpull/root+$mnt/skpull/run]bench/$l:latest"
            umount_under "$mnt/skpull"
            rm -rf "$mnt/skpull"
            for v in "${mk_variants[@]}"; do
                m=$mkimg; [ "$v" = old ] && m=$old
                rm -rf "$mnt/pull"
                tim "$l pull-$c $v" env MKIMG_ROOT="$mnt/pull" "$m" pull -q \
                    "127.0.0.1:$reg_port/bench/$l-$c:latest"
            done
        done
        rm -rf "$mnt/pull"
        stop_registry
    done
done
med() { echo "${times[$1]:-}" | median || true; }
echo "| $mb MiB layer, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), reps $reps | peer s | mkimg s | ratio |$([ -z "$old" ] || echo ' before s | before ratio |')"
echo "|---|---|---|---|$([ -z "$old" ] || echo '---|---|')"
row() { # LAYER WHAT PEER-KEY MKIMG-KEY
    local p n o
    p=$(med "$1 $3") n=$(med "$1 $4 new")
    [ -n "$p" ] && [ -n "$n" ] || return 0
    printf '| %s: %s | %s | %s | %.2f |' "$1" "$2" "$p" "$n" "$(echo "$n / $p" | bc -l)"
    if [ -n "$old" ]; then
        o=$(med "$1 $4 old")
        printf ' %s | %.2f |' "$o" "$(echo "$o / $p" | bc -l)"
    fi
    echo
}
for l in random mixed; do
    row "$l" "save zstd / zstd -T0 -3" zstd-cli save-zstd
    row "$l" "save gzip / pigz -6" pigz save-gzip
    row "$l" "push gzip / skopeo" "push-gzip skopeo" push-gzip
    row "$l" "push zstd / skopeo" "push-zstd skopeo" push-zstd
    row "$l" "pull gzip / skopeo to containers-storage (both unpack)" "pull-gzip skopeo-cs" pull-gzip
    row "$l" "pull zstd / skopeo to containers-storage (both unpack)" "pull-zstd skopeo-cs" pull-zstd
    row "$l" "pull gzip (+ unpack) / skopeo to oci (no unpack)" "pull-gzip skopeo" pull-gzip
    row "$l" "pull zstd (+ unpack) / skopeo to oci (no unpack)" "pull-zstd skopeo" pull-zstd
done
echo
echo "all runs (seconds):"
for k in "${!times[@]}"; do echo "  $k: ${times[$k]}"; done | sort
