#!/usr/bin/env bash
# bench/remote-cache.sh - the remote build cache (issue 16): a fresh-store rebuild of the
# manysteps and multistage workloads (bench/workloads.sh) from a cache in a loopback registry,
# mkimg against Buildah in the same run. Prints a markdown table; asserts nothing.
#
# Method: one docker-registry (distribution) on 127.0.0.1 (tests/lib/registry.sh), plain http,
# its storage and every store on the journaled ext4 loop file of bench/loopfs.sh. Per workload,
# untimed, each builder seeds the cache from a store holding only the busybox base:
#   mkimg   build --cache-to type=registry,ref=REG/cache/W:mk,mode=max
#   buildah bud --layers --cache-to REG/cache/W-buildah --cache-from REG/cache/W-buildah
# then, REPS times, the builders alternating and taking turns to go first, each rebuilds the
# same context in a new store holding only the base (mkimg MKIMG_ROOT, Buildah --root/--runroot
# with the overlay driver), timed:
#   mkimg   build --cache-from type=registry,ref=REG/cache/W:mk
#   buildah bud --layers --cache-from REG/cache/W-buildah
# (no --cache-to in the rebuilds: neither exports anything there).
# Buildah runs as in bench/run.sh (runc, --network host, --pull=never) with --tls-verify=false.
# The base is the same image for both (mkimg imports samples/busybox-rootfs.sh's rootfs, skopeo
# copies it into Buildah's store). The "steps run" column counts the steps each rebuild ran
# rather than took from the cache (mkimg: " => done" progress lines, not " => CACHED";
# Buildah: STEP lines, FROM aside, without a "Using cache" line): 0 means the rebuild came
# whole from the remote cache.
# Environment: REPS (default 3; the median is shown), WORKLOADS (default "manysteps
# multistage"), MKIMG (default ./mkimg), BENCH_TMP (where the loop file goes, default /var/tmp),
# BENCH_LOGS (a directory: the rebuilds' logs are copied there as BUILDER-WORKLOAD-REP.log).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
reps=${REPS:-3}
workloads=${WORKLOADS:-manysteps multistage}
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
for t in buildah runc skopeo docker-registry bc python3 mkfs.ext4 "$mkimg"; do
    command -v "$t" >/dev/null || { echo "bench: $t not found (make deps)" >&2; exit 1; }
done
say() { echo "bench: $(date +%T) $*" >&2; }

. "$top/bench/loopfs.sh"
loopfs_setup mkimg-rc 8G
# The registry: tests/lib/registry.sh's reg_start, its storage on the loop file system; at exit
# reg_stop, then t_cleanup (set +e: reg_stop's wait returns the registry's signal status).
T=$mnt
t_cleanup() { umount_under "$mnt"; rm -rf "$work"; }
. "$top/tests/lib/registry.sh"
trap 'set +e; reg_stop; t_cleanup' EXIT

say "generating the workloads"
BIG_MB=1 IGNORE_MB=10 bash "$top/bench/workloads.sh" "$work/ctx" # only two of them are built
bash "$top/samples/busybox-rootfs.sh" "$work/rootfs"
MKIMG_ROOT=$mnt/base "$mkimg" import "$work/rootfs" busybox:latest >/dev/null

reg_start rc >&2 || exit 1
reg=$REG

# fresh_mk DIR / fresh_bh DIR: a new store in DIR holding only the base image.
fresh_mk() {
    rm -rf "$1"
    MKIMG_ROOT=$1 "$mkimg" import "$work/rootfs" busybox:latest >/dev/null
}
fresh_bh() {
    umount_under "$1"
    rm -rf "$1"
    skopeo copy -q "oci:$mnt/base:busybox:latest" \
        "containers-storage:[overlay@$1/root+$1/run]docker.io/library/busybox:latest"
}
bh() { # DIR BUD-ARGS...: buildah bud in the store DIR
    local d=$1
    shift
    buildah --root "$d/root" --runroot "$d/run" --storage-driver overlay bud --runtime runc \
        --layers --network host --pull=never --tls-verify=false "$@"
}
steps_run() { # BUILDER: the steps the last build ran (not taken from a cache)
    case $1 in
    mkimg) grep -c '^ => done' "$work/last.log" || true ;;
    buildah) awk '/STEP [0-9]+\/[0-9]+: / { if (s && !c) n++; sub(/.*STEP [0-9]+\/[0-9]+: /, "")
        s = ($1 != "FROM"); c = 0 }
        /Using cache/ { c = 1 } END { if (s && !c) n++; print n + 0 }' "$work/last.log" ;;
    esac
}

declare -A times runs
for w in $workloads; do
    mkref=$reg/cache/$w:mk
    bhref=$reg/cache/$w-buildah
    say "$w: seeding the caches"
    fresh_mk "$mnt/mkA"
    t=$(run "mkimg seed $w" env MKIMG_ROOT="$mnt/mkA" "$mkimg" build --progress=plain \
        --cache-to "type=registry,ref=$mkref,mode=max" -t "rc-$w" "$work/ctx/$w")
    say "$w: mkimg seed ${t}s"
    fresh_bh "$mnt/bhA"
    if t=$(run "buildah seed $w" bh "$mnt/bhA" --cache-to "$bhref" --cache-from "$bhref" \
        -t "rc-$w" "$work/ctx/$w"); then
        say "$w: buildah seed ${t}s"
    else
        times[buildah $w]=failed
        cp "$work/last.log" "$work/bh-fail-$w-seeding.log"
    fi
    umount_under "$mnt/bhA"
    rm -rf "$mnt/mkA" "$mnt/bhA"
    for rep in $(seq 1 "$reps"); do
        order=(mkimg buildah)
        [ $((rep % 2)) = 1 ] || order=(buildah mkimg)
        for b in "${order[@]}"; do
            [ "${times[$b $w]:-}" != failed ] || continue
            if [ "$b" = mkimg ]; then
                fresh_mk "$mnt/mkB"
                t=$(run "mkimg rebuild $w" env MKIMG_ROOT="$mnt/mkB" "$mkimg" build \
                    --progress=plain --cache-from "type=registry,ref=$mkref" -t "rc-$w" \
                    "$work/ctx/$w")
            else
                fresh_bh "$mnt/bhB"
                t=$(run "buildah rebuild $w" bh "$mnt/bhB" --cache-from "$bhref" -t "rc-$w" \
                    "$work/ctx/$w") || {
                    times[$b $w]=failed
                    cp "$work/last.log" "$work/bh-fail-$w-rebuild.log"
                    continue
                }
            fi
            [ -z "${BENCH_LOGS:-}" ] || cp "$work/last.log" "$BENCH_LOGS/$b-$w-$rep.log"
            times[$b $w]="${times[$b $w]:-} $t"
            runs[$b $w]="${runs[$b $w]:-} $(steps_run "$b")"
            say "$w rep $rep: $b ${t}s, steps run: $(steps_run "$b")"
        done
    done
    umount_under "$mnt/bhB"
    rm -rf "$mnt/mkB" "$mnt/bhB"
done

echo "| workload (fresh-store rebuild from the registry cache, median of $reps) | mkimg s |" \
    "buildah s | ratio (target ≤ 0.3) | steps run per rebuild, mkimg / buildah |"
echo "|---|---|---|---|---|"
for w in $workloads; do
    mk=$(echo "${times[mkimg $w]}" | median | awk '{printf "%.3f", $1}')
    if [ "${times[buildah $w]:-failed}" = failed ]; then
        echo "| $w | $mk | failed | n/a | ${runs[mkimg $w]# } / n/a |"
    else
        bm=$(echo "${times[buildah $w]}" | median | awk '{printf "%.3f", $1}')
        ratio=$(echo "scale=3; $mk / $bm" | bc | sed 's/^\./0./')
        echo "| $w | $mk | $bm | $ratio | ${runs[mkimg $w]# } / ${runs[buildah $w]# } |"
    fi
done
for f in "$work"/bh-fail-*.log; do
    [ -e "$f" ] || continue
    echo
    echo "Buildah's $(basename "$f" .log | sed 's/^bh-fail-//; s/-/ /') failed; its last lines:"
    tail -n 5 "$f" | sed 's/^/    /'
done
