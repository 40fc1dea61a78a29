#!/usr/bin/env bash
# bench/parallel.sh - independent stages: a Dockerfile with three CPU-bound stages that do not
# use each other and a final stage that copies from all three, built cold (--no-cache) by
# mkimg with --jobs 1 and its default (one per core) and by Buildah with --jobs 1 and --jobs N
# (N = cores), alternating, in the same run. Both stores on a journaled ext4 loop file, as in
# bench/run.sh. Prints a markdown table of medians and ratios; asserts nothing.
# Environment: REPS (default 3), MKIMG (default ./mkimg), BENCH_TMP (default /var/tmp),
# SPIN (loop iterations per stage, default 400000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
reps=${REPS:-3}
spin=${SPIN:-400000}
cores=$(nproc)
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }

. "$top/bench/loopfs.sh"
loopfs_setup mkimg-par 4G

{
    for s in one two three; do
        echo "FROM busybox:latest AS $s"
        echo "RUN i=0; while [ \$i -lt $spin ]; do i=\$((i+1)); done; echo $s > /$s"
    done
    echo "FROM busybox:latest"
    for s in one two three; do echo "COPY --from=$s /$s /$s"; done
} >"$work/ctx/Dockerfile"

bash "$top/samples/busybox-rootfs.sh" "$work/rootfs"
MKIMG_ROOT=$mnt/mk "$mkimg" import "$work/rootfs" busybox:latest >/dev/null
bh=(buildah --root "$mnt/bh" --runroot "$mnt/bhrun" --storage-driver overlay)
skopeo copy -q "oci:$mnt/mk:busybox:latest" \
    "containers-storage:[overlay@$mnt/bh+$mnt/bhrun]docker.io/library/busybox:latest"

declare -A times
for rep in $(seq 1 "$reps"); do
    for cfg in mk1 mkN bh1 bhN; do
        case $cfg in
        mk1) t=$(run $cfg env MKIMG_ROOT="$mnt/mk" "$mkimg" build -q --no-cache -j 1 -t par "$work/ctx") ;;
        mkN) t=$(run $cfg env MKIMG_ROOT="$mnt/mk" "$mkimg" build -q --no-cache -t par "$work/ctx") ;;
        bh1) t=$(run $cfg "${bh[@]}" bud --runtime runc --layers --no-cache --network host --pull=never -q --jobs 1 -t par "$work/ctx") ;;
        bhN) t=$(run $cfg "${bh[@]}" bud --runtime runc --layers --no-cache --network host --pull=never -q --jobs "$cores" -t par "$work/ctx") ;;
        esac
        times[$cfg]="${times[$cfg]:-} $t"
        echo "bench: rep $rep $cfg ${t}s" >&2
    done
done
declare -A med
for cfg in mk1 mkN bh1 bhN; do med[$cfg]=$(echo "${times[$cfg]}" | median); done
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "| three independent CPU-bound stages, cold, $cores cores, $reps runs | median s |"
echo "|---|---|"
echo "| mkimg --jobs 1 | ${med[mk1]} |"
echo "| mkimg (default: --jobs $cores) | ${med[mkN]} |"
echo "| buildah --jobs 1 | ${med[bh1]} |"
echo "| buildah --jobs $cores | ${med[bhN]} |"
echo
echo "mkimg default / mkimg --jobs 1: $(ratio "${med[mkN]}" "${med[mk1]}");" \
    "buildah --jobs $cores / --jobs 1: $(ratio "${med[bhN]}" "${med[bh1]}");" \
    "mkimg default / buildah --jobs $cores: $(ratio "${med[mkN]}" "${med[bhN]}")"
