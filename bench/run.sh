#!/usr/bin/env bash
# bench/run.sh - `make bench`: times mkimg builds and prints figures (asserts nothing).
# Scenarios: hello-cold (a fresh store holding only the imported base), hello-warm (the same
# build again on that store). Each runs REPS times after a warm-up; medians and min-max.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=$top/mkimg
reps=${REPS:-5}
work=$(mktemp -d /tmp/mkimg-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$top/samples/busybox-rootfs.sh" "$work/rootfs"

now() { date +%s.%N; }
stats() { # prints median min max of the numbers on stdin
    sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}'
}
run_scenario() { # name, command producing one time per line
    local name=$1; shift
    local times
    times=$("$@")
    read -r med min max <<<"$(echo "$times" | stats)"
    printf '| %-12s | %8s | %8s – %-8s |\n' "$name" "$med" "$min" "$max"
}
cold() {
    for i in $(seq 0 "$reps"); do
        rm -rf "$work/store"
        MKIMG_ROOT=$work/store "$mkimg" import "$work/rootfs" busybox:latest >/dev/null
        t0=$(now)
        MKIMG_ROOT=$work/store "$mkimg" build -q -t hello "$top/samples/hello" >/dev/null
        t1=$(now)
        [ "$i" = 0 ] || echo "$t1 - $t0" | bc -l
    done
}
warm() {
    for i in $(seq 0 "$reps"); do
        t0=$(now)
        MKIMG_ROOT=$work/store "$mkimg" build -q -t hello "$top/samples/hello" >/dev/null
        t1=$(now)
        [ "$i" = 0 ] || echo "$t1 - $t0" | bc -l
    done
}
echo "# mkimg build of samples/hello ($(nproc) cores, kernel $(uname -r), $reps runs after a warm-up)"
echo "| scenario     | median s | min – max s         |"
echo "|--------------|----------|---------------------|"
run_scenario hello-cold cold
run_scenario hello-warm warm
