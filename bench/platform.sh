#!/usr/bin/env bash
# bench/platform.sh - an arm64 build with one emulated RUN on this (x86-64) host: mkimg
# build --platform linux/arm64 against buildah build --platform linux/arm64 --runtime runc, both
# through QEMU user emulation registered in binfmt_misc (tests/lib/platform.sh registers it),
# cold (--no-cache), alternating, in the same run. Both stores on a journaled ext4 loop file,
# as in bench/run.sh; both start from the same arm64 busybox (Debian's busybox-static:arm64,
# imported by mkimg and copied into Buildah's storage by skopeo). Prints a markdown table of
# medians and the ratio; asserts nothing.
# Environment: REPS (default 5), MKIMG (default ./mkimg), BENCH_TMP (default /var/tmp),
# SPIN (loop iterations of the emulated shell, default 20000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
reps=${REPS:-5}
spin=${SPIN:-20000}
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
for t in buildah runc skopeo bc mkfs.ext4 "$mkimg"; do
    command -v "$t" >/dev/null || { echo "bench: $t not found (make deps)" >&2; exit 1; }
done

. "$top/bench/loopfs.sh"
loopfs_setup mkimg-plat 2G

T=$work MKIMG_TOP=$top
. "$top/tests/lib/platform.sh"
t_binfmt_setup || { echo "bench: cannot register qemu-aarch64 in binfmt_misc" >&2; exit 1; }
t_arm64_busybox "$work/rootfs" >/dev/null ||
    { echo "bench: no arm64 busybox (busybox-static:arm64)" >&2; exit 1; }
cat >"$work/ctx/Dockerfile" <<DF
FROM busybox:latest
RUN i=0; while [ \$i -lt $spin ]; do i=\$((i+1)); done; uname -m > /arch
DF

MKIMG_ROOT=$mnt/mk "$mkimg" import --platform linux/arm64 "$work/rootfs" busybox:latest >/dev/null
bh=(buildah --root "$mnt/bh" --runroot "$mnt/bhrun" --storage-driver overlay)
skopeo copy -q --override-arch arm64 "oci:$mnt/mk:busybox:latest" \
    "containers-storage:[overlay@$mnt/bh+$mnt/bhrun]docker.io/library/busybox:latest"

declare -A times
for rep in $(seq 1 "$reps"); do
    order="mk bh"
    [ $((rep % 2)) = 0 ] && order="bh mk"
    for cfg in $order; do
        case $cfg in
        mk) t=$(run $cfg env MKIMG_ROOT="$mnt/mk" "$mkimg" build -q --no-cache --platform linux/arm64 -t plat "$work/ctx") ;;
        bh) t=$(run $cfg "${bh[@]}" build --runtime runc --platform linux/arm64 --layers --no-cache --network host --pull=never -q -t plat "$work/ctx") ;;
        esac
        times[$cfg]="${times[$cfg]:-} $t"
        echo "bench: rep $rep $cfg ${t}s" >&2
    done
done
mk=$(echo "${times[mk]}" | median)
bh=$(echo "${times[bh]}" | median)
echo "| arm64 build, one emulated RUN ($spin shell loop turns under qemu-aarch64), cold, $reps runs | median s |"
echo "|---|---|"
echo "| mkimg build --platform linux/arm64 | $mk |"
echo "| buildah build --platform linux/arm64 --runtime runc | $bh |"
echo
echo "mkimg / buildah: $(echo "scale=2; $mk / $bh" | bc)"
