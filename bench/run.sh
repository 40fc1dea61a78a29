#!/usr/bin/env bash
# bench/run.sh - `make bench`: mkimg against BuildKit and Buildah on the same Dockerfiles, on
# the same machine, in the same run (issues 7 and 19). Prints markdown tables and writes them to
# bench/results/latest.md. It measures and asserts nothing: the "met" column only compares the
# medians to the targets.
#
# Method: all stores live on one journaled ext4 loop file (the root file system of the build
# machines has no journal, and many-file timings swing there). Each builder has its own store:
# mkimg MKIMG_ROOT=DIR, Buildah --root/--runroot with the overlay driver and runc (cgroups v1
# here), BuildKit inside a dockerd of the bench's own (bench/dockerd.sh: data-root and socket on
# the loop fs; if it cannot start, BuildKit is skipped with one line). All start from the same
# busybox base: mkimg imports the rootfs that samples/busybox-rootfs.sh lays out, skopeo copies
# that image out of mkimg's store (an OCI layout) into Buildah's containers-storage, and dockerd
# loads it from `mkimg save --format docker-archive`, so the base digest is identical. Buildah
# runs with --layers (a layer and a cache entry per step, as mkimg does), --network host (mkimg's
# default) and --pull=never (no network here); BuildKit with --network=none. Cold means an empty
# cache: a fresh store for mkimg and Buildah, `docker builder prune -af` and every image but the
# base removed for BuildKit. A warm-up (a build of hello by each builder, every context read
# once) puts binaries and contexts in the page cache; then each scenario runs REPS times per
# builder, the builders alternating and taking turns to go first. The loop file system and its
# backing file are synced (untimed) before each timed run so that one run's writeback does not
# land in the next one's time.
#
# Environment: REPS (default 3), BIG_REPS (bigfile, push and pull; default REPS), WORKLOADS (default all), BIG_MB / IGNORE_MB (sizes, see
# workloads.sh), MKIMG (the binary, default ./mkimg), OUT (default bench/results/latest.md),
# BENCH_TMP (where the loop file goes, default /var/tmp).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
reps=${REPS:-3}
big_reps=${BIG_REPS:-$reps} # bigfile and push/pull: each run moves 1-3 GiB
workloads=${WORKLOADS:-hello manysteps manyfiles bigfile multistage ignore stages}
out=${OUT:-$top/bench/results/latest.md}

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (it mounts a loop file and runs buildah with runc)"
for t in buildah runc skopeo docker-registry /usr/bin/time bc python3 mkfs.ext4 "$mkimg"; do
    command -v "$t" >/dev/null || die "$t not found (make deps installs the packages)"
done
. "$top/bench/dockerd.sh"

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/mkimg-bench-XXXXXX")
mnt=$work/mnt
ctx=$work/ctx
res=$work/results.tsv
log=$work/run.log
reg_pid=
umount_under() { # unmounts DIR and everything below it, deepest first
    awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
stop_registry() {
    if [ -n "$reg_pid" ]; then
        kill "$reg_pid" 2>/dev/null || true
        wait "$reg_pid" 2>/dev/null || true
        reg_pid=
    fi
}
cleanup() {
    stop_registry
    dk_stop
    umount_under "$mnt"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$mnt" "$ctx"
truncate -s 32G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mount -o loop "$work/disk.img" "$mnt"
: >"$res"

say "generating the workloads"
bash "$top/bench/workloads.sh" "$ctx"
bash "$top/samples/busybox-rootfs.sh" "$work/rootfs"
MKIMG_ROOT=$mnt/base "$mkimg" import "$work/rootfs" busybox:latest >/dev/null
builders="mkimg buildkit buildah"
dk_skipped=
if dk_start "$mnt/docker" >"$work/dockerd.why"; then
    MKIMG_ROOT=$mnt/base "$mkimg" save --format docker-archive -o "$work/base.tar" busybox:latest
    dk_load "$work/base.tar"
else
    dk_skipped=$(head -n 1 "$work/dockerd.why")
    say "BuildKit skipped: $dk_skipped"
    tail -n +2 "$work/dockerd.why" >>"$log"
    builders="mkimg buildah"
fi

bh=(buildah --root "$mnt/bh" --runroot "$mnt/bhrun" --storage-driver overlay)
mk_reset() {
    rm -rf "$mnt/mk"
    MKIMG_ROOT=$mnt/mk "$mkimg" import "$work/rootfs" busybox:latest >/dev/null
}
bh_reset() {
    umount_under "$mnt/bh"
    umount_under "$mnt/bhrun"
    rm -rf "$mnt/bh" "$mnt/bhrun"
    skopeo copy -q "oci:$mnt/base:busybox:latest" \
        "containers-storage:[overlay@$mnt/bh+$mnt/bhrun]docker.io/library/busybox:latest"
}
# The commands are set into the array cmd, for /usr/bin/time to run them directly.
mk_build() { cmd=(env "MKIMG_ROOT=$mnt/mk" "$mkimg" build -q -t "bench-$1" "$ctx/$1"); }
dk_build() { cmd=(env DOCKER_BUILDKIT=1 "$dk_docker" build --network=none -q -t "bench-$1" "$ctx/$1"); }
bh_build() {
    cmd=("${bh[@]}" bud --runtime runc --layers --network host --pull=never -q -t "bench-$1"
        "$ctx/$1")
}

# timed BUILDER WORKLOAD SCENARIO CMD... - runs CMD once and, if record is 1, appends
# "builder workload scenario seconds maxrss_kib" (or "... fail") to the results.
record=1
timed() {
    local b=$1 w=$2 s=$3 rc=0 t0 t1
    shift 3
    sync -f "$mnt/."
    sync "$work/disk.img"
    t0=$(date +%s%N)
    /usr/bin/time -f %M -o "$work/rss" "$@" >"$work/last.log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    cat "$work/last.log" >>"$log"
    if [ "$rc" != 0 ]; then
        [ "$record" = 0 ] || echo "$b $w $s fail" >>"$res"
        say "$b $w $s failed (exit $rc):"
        tail -n 3 "$work/last.log" | sed 's/^/    /' >&2
        tail -n 1 "$work/last.log" | cut -c1-200 >"$work/fail-$b-$w"
        return 1
    fi
    [ "$record" = 0 ] ||
        echo "$b $w $s $(echo "scale=3; ($t1 - $t0) / 1000000000" | bc) $(tail -n 1 "$work/rss")" >>"$res"
}
failed() { [ -e "$work/fail-$1-$2" ]; }
# each_builder WORKLOAD SCENARIO REP - one run of each builder (that has not failed on this
# workload), the order rotated by one on each repetition.
declare -A pfx=([mkimg]=mk [buildkit]=dk [buildah]=bh)
each_builder() {
    local w=$1 s=$2 b order k
    read -r -a order <<<"$builders"
    k=$((($3 - 1) % ${#order[@]}))
    for b in "${order[@]:k}" "${order[@]:0:k}"; do
        failed "$b" "$w" && continue
        [ "$s" != cold ] || "${pfx[$b]}_reset"
        "${pfx[$b]}_build" "$w"
        timed "$b" "$w" "$s" "${cmd[@]}" || true
    done
}
touch_source() { # changes the first bytes of the workload's touch file
    local f
    f=$ctx/$1/$(cat "$ctx/$1.touch")
    head -c 32 /dev/urandom | dd of="$f" conv=notrunc status=none
}

# Push and pull of the bigfile image through a loopback registry, mkimg against skopeo copy. The
# pushes move the same bytes: skopeo reads mkimg's store as an OCI layout and sends its layers as
# they are (uncompressed tar), so mkimg pushes with --compression-format none (its default, gzip,
# would compress 1 GiB of random data: see the report). The pulls both end in a store ready to
# build on: mkimg pull unpacks into snapshots, skopeo copies into containers-storage (overlay).
# The registry starts empty for every push.
reg_port=
start_registry() {
    stop_registry
    rm -rf "$mnt/registry"
    reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $mnt/registry
http:
  addr: 127.0.0.1:$reg_port
EOF
    docker-registry serve "$work/registry.yml" >>"$log" 2>&1 &
    reg_pid=$!
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "the loopback registry did not start"
}
mk_has() { "$mkimg" --help 2>&1 | grep -qE "^  $1 "; }
push_pull() {
    local rep dst
    for rep in $(seq 1 "$big_reps"); do
        start_registry
        dst=127.0.0.1:$reg_port/bench/bigfile:latest
        timed skopeo bigfile push skopeo copy -q --dest-tls-verify=false \
            "oci:$mnt/mk:bench-bigfile:latest" "docker://$dst" || return 0
        if mk_has push; then
            start_registry
            dst=127.0.0.1:$reg_port/bench/bigfile:latest
            timed mkimg bigfile push env "MKIMG_ROOT=$mnt/mk" "$mkimg" push -q \
                --compression-format none bench-bigfile "$dst" || true
        fi
        umount_under "$mnt/skpull"
        rm -rf "$mnt/skpull" "$mnt/mkpull"
        timed skopeo bigfile pull skopeo copy -q --src-tls-verify=false "docker://$dst" \
            "containers-storage:[overlay@$mnt/skpull/root+$mnt/skpull/run]bench/bigfile:latest" ||
            true
        if mk_has pull; then
            timed mkimg bigfile pull env "MKIMG_ROOT=$mnt/mkpull" "$mkimg" pull -q "$dst" || true
        fi
    done
    umount_under "$mnt/skpull"
    stop_registry
    rm -rf "$mnt/registry" "$mnt/skpull" "$mnt/mkpull"
}

# The warm-up, not recorded: hello by each builder (binaries and base image into the page
# cache), every context read once.
say "warm-up"
find "$ctx" -type f -exec cat {} + >/dev/null
for b in $builders; do
    "${pfx[$b]}_reset"
    "${pfx[$b]}_build" hello
    "${cmd[@]}" >>"$log" 2>&1 || true
done

for w in $workloads; do
    say "$w"
    for s in cold warm touch; do
        n=$reps
        [ "$w" != bigfile ] || n=$big_reps
        for rep in $(seq 1 "$n"); do
            [ "$s" != touch ] || touch_source "$w"
            each_builder "$w" "$s" "$rep"
        done
    done
    if [ "$w" = bigfile ]; then
        say "push and pull"
        push_pull
    fi
    for b in $builders; do "${pfx[$b]}_reset"; done
done

# ---- report ----
stats() { # median min max of the numbers on stdin, or nothing
    sort -g | awk '{a[NR]=$1} END {if (NR) {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}}'
}
col() { # builder workload scenario field -> the values
    awk -v b="$1" -v w="$2" -v s="$3" -v f="$4" '$1==b && $2==w && $3==s && $4!="fail" {print $f}' "$res"
}
median() { col "$@" 4 | stats | cut -d' ' -f1; }
# Targets for mkimg / BuildKit (issue 19; push and pull: mkimg / skopeo, issue 7).
target_of() {
    case $1/$2 in
    stages/cold) echo 0.7 ;;
    */cold) echo 0.2 ;;
    */warm) echo 0.1 ;;
    manyfiles/touch) echo 0.15 ;;
    */push | */pull) echo 0.8 ;;
    esac
}
mib() { awk '{printf "%.0f", $1 / 1024}'; }
cell() { # builder workload scenario -> "median (min–max)", or why there is none
    local m mi mx
    read -r m mi mx <<<"$(col "$1" "$2" "$3" 4 | stats)" || true
    if [ -n "${m:-}" ]; then
        echo "$m ($mi–$mx)"
    elif failed "$1" "$2"; then
        echo "failed: $(cat "$work/fail-$1-$2")"
    elif [ "$1" = buildkit ] && [ -n "$dk_skipped" ]; then
        echo "skipped"
    elif [ "$1" = mkimg ] && [[ $3 == pu* ]] && ! mk_has "$3"; then
        echo "n/a (mkimg $3 not implemented)"
    else
        echo n/a
    fi
}
ratio() { # workload scenario builder-a builder-b -> median a / median b
    local a b
    a=$(median "$3" "$1" "$2")
    b=$(median "$4" "$1" "$2")
    if [ -n "$a" ] && [ -n "$b" ]; then echo "scale=3; $a / $b" | bc | sed 's/^\./0./'; else echo n/a; fi
}
met() { # ratio target
    if [ -z "$2" ] || [ "$1" = n/a ]; then echo "–"; elif [ "$(echo "$1 <= $2" | bc)" = 1 ]; then echo yes; else echo "**no**"; fi
}
build_row() { # workload scenario
    local r=$(ratio "$1" "$2" mkimg buildkit) t=$(target_of "$1" "$2")
    printf '| %s %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(cell mkimg "$1" "$2")" \
        "$(cell buildkit "$1" "$2")" "$(cell buildah "$1" "$2")" "$r" \
        "$(ratio "$1" "$2" mkimg buildah)" "${t:+≤ }${t:-–}" "$(met "$r" "$t")"
}
transfer_row() { # scenario
    local r=$(ratio bigfile "$1" mkimg skopeo) t=$(target_of bigfile "$1")
    printf '| %s bigfile | %s | %s | %s | ≤ %s | %s |\n' "$1" "$(cell mkimg bigfile "$1")" \
        "$(cell skopeo bigfile "$1")" "$r" "$t" "$(met "$r" "$t")"
}
report() {
    local w s
    echo "# mkimg vs BuildKit and Buildah ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- storage: all stores on a journaled ext4 loop file; BuildKit: ${dk_skipped:+skipped ($dk_skipped)}${dk_skipped:-dockerd $("$dk_docker" version -f '{{.Server.Version}}' 2>/dev/null) (overlay2, its own data-root on the loop fs)}; Buildah $(buildah --version | awk '{print $3}') with the overlay driver (native overlay diff: $("${bh[@]}" info 2>/dev/null | awk -F'"' '/Native Overlay Diff/ {print $4}')), runc $(runc --version | awk 'NR==1 {print $3}'), cgroups v$(stat -fc %T /sys/fs/cgroup | grep -q cgroup2 && echo 2 || echo 1); skopeo $(skopeo --version | awk '{print $3}'); mkimg $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown) as $mkimg (store: OCI layout + snapshots, layers stored uncompressed)"
    echo "- method: DOCKER_BUILDKIT=1 docker build --network=none; buildah bud --layers --network host --pull=never --runtime runc; mkimg build; each with its default parallelism; a warm-up build of hello per builder, then $reps runs per scenario and builder ($big_reps for bigfile, push and pull), alternating; sync before each run; times are wall seconds (median (min–max)), RSS is /usr/bin/time's max RSS"
    echo "- workloads: see bench/workloads.sh (bigfile ${BIG_MB:-1024} MiB, ignore ${IGNORE_MB:-500} MiB excluded, stages: 4 independent stages that sleep 1 s); cold = empty cache, warm = the same build again, touch = one COPY source changed"
    echo
    echo "## builds"
    echo
    echo "| workload | mkimg s | BuildKit s | Buildah s | mkimg/BuildKit | mkimg/Buildah | target mkimg/BuildKit | met |"
    echo "|---|---|---|---|---|---|---|---|"
    for w in $workloads; do
        for s in cold warm touch; do build_row "$w" "$s"; done
    done
    case " $workloads " in *" bigfile "*)
        echo
        echo "## push and pull of the bigfile image (loopback registry; mkimg vs skopeo copy)"
        echo
        echo "Push: both send the uncompressed layers (mkimg push --compression-format none). Pull: both unpack (mkimg into its snapshots, skopeo into containers-storage overlay)."
        echo
        echo "| workload | mkimg s | skopeo s | mkimg/skopeo | target | met |"
        echo "|---|---|---|---|---|---|"
        transfer_row push
        transfer_row pull
        ;;
    esac
    echo
    echo "## peak RSS (max over all runs of the workload; target: flat in layer size, bigfile ≤ 64 MiB)"
    echo
    echo "BuildKit's is not measured: its work is done in dockerd, not in the timed client."
    echo
    echo "| workload | mkimg MiB | buildah MiB | mkimg ≤ 64 MiB |"
    echo "|---|---|---|---|"
    for w in $workloads; do
        local a o
        a=$(awk -v w="$w" '$1=="mkimg" && $2==w && $3!="push" && $3!="pull" && $4!="fail" {print $5}' "$res" | sort -g | tail -n 1 | mib)
        o=$(awk -v w="$w" '$1=="buildah" && $2==w && $4!="fail" {print $5}' "$res" | sort -g | tail -n 1 | mib)
        printf '| %s | %s | %s | %s |\n' "$w" "${a:-n/a}" "${o:-n/a}" \
            "$([ -n "$a" ] && { [ "$a" -le 64 ] && echo yes || echo '**no**'; } || echo n/a)"
    done
}
mkdir -p "$(dirname "$out")"
report | tee "$out"
cp "$res" "$(dirname "$out")/latest.tsv" 2>/dev/null || true
