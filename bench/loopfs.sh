# bench/loopfs.sh - sourced by the single-scenario benchmarks (parallel.sh, platform.sh): a
# scratch dir $work with a journaled ext4 loop file mounted at $mnt (removed at exit, as in
# bench/run.sh), `run NAME CMD...` printing the seconds CMD took (the file system synced,
# untimed, first), and `median` of numbers on stdin.
# Usage: loopfs_setup PREFIX SIZE (e.g. mkimg-par 4G).
umount_under() {
    awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
loopfs_setup() {
    work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/$1-XXXXXX")
    mnt=$work/mnt
    trap 'umount_under "$mnt"; rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$mnt" "$work/ctx"
    truncate -s "$2" "$work/disk.img"
    mkfs.ext4 -q -F "$work/disk.img"
    mount -o loop "$work/disk.img" "$mnt"
}
run() { # NAME CMD... : prints seconds
    local t0 t1
    sync -f "$mnt/."
    t0=$(date +%s%N)
    "${@:2}" >"$work/last.log" 2>&1 || { echo "bench: $1 failed:" >&2; tail -3 "$work/last.log" >&2; exit 1; }
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
