#!/usr/bin/env bash
# bench/run.sh - `make bench`: mkimg against Buildah on the same Dockerfiles, on the same machine,
# in the same run (issue 7). Prints markdown tables and writes them to bench/results/latest.md.
# It measures and asserts nothing: the "met" column only compares the medians to the targets.
#
# Method: both stores live on one journaled ext4 loop file (the root file system of the build
# machines has no journal, and many-file timings swing there). Each builder has its own store:
# mkimg MKIMG_ROOT=DIR, Buildah --root/--runroot with the overlay driver and runc (cgroups v1
# here). Both start from the same busybox base: mkimg imports the rootfs that
# samples/busybox-rootfs.sh lays out, and skopeo copies that image out of mkimg's store (an OCI
# layout) into Buildah's containers-storage, so the base digest is identical. Buildah runs with
# --layers (a layer and a cache entry per step, as mkimg does), --network host (mkimg's default)
# and --pull=never (no network here). A warm-up (a build of hello by each builder, every context
# read once) puts binaries and contexts in the page cache; then each scenario runs REPS times
# per builder, the two builders alternating and taking turns to go first. The loop file system
# and its backing file are synced (untimed) before each timed run so that one run's writeback
# does not land in the next one's time.
#
# Environment: REPS (default 3), BIG_REPS (bigfile, push and pull; default 2), WORKLOADS (default all), BIG_MB / IGNORE_MB (sizes, see
# workloads.sh), MKIMG (the binary, default ./mkimg), OUT (default bench/results/latest.md),
# BENCH_TMP (where the loop file goes, default /var/tmp).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=${MKIMG:-$top/mkimg}
reps=${REPS:-3}
big_reps=${BIG_REPS:-2} # bigfile and push/pull: each run moves 1-3 GiB
workloads=${WORKLOADS:-hello manysteps manyfiles bigfile multistage ignore}
out=${OUT:-$top/bench/results/latest.md}

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $(date +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (it mounts a loop file and runs buildah with runc)"
for t in buildah runc skopeo docker-registry /usr/bin/time bc python3 mkfs.ext4 "$mkimg"; do
    command -v "$t" >/dev/null || die "$t not found (make deps installs the packages)"
done

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
# both WORKLOAD SCENARIO REP - one run of each builder (that has not failed on this workload),
# mkimg first on odd repetitions.
both() {
    local w=$1 s=$2 rep=$3 b order=(mkimg buildah)
    [ $((rep % 2)) = 1 ] || order=(buildah mkimg)
    for b in "${order[@]}"; do
        failed "$b" "$w" && continue
        case $b in
        mkimg)
            [ "$s" != cold ] || mk_reset
            mk_build "$w"
            timed mkimg "$w" "$s" "${cmd[@]}" || true
            ;;
        buildah)
            [ "$s" != cold ] || bh_reset
            bh_build "$w"
            timed buildah "$w" "$s" "${cmd[@]}" || true
            ;;
        esac
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
mk_reset
bh_reset
say "warm-up"
find "$ctx" -type f -exec cat {} + >/dev/null
mk_build hello
"${cmd[@]}" >>"$log" 2>&1 || true
bh_build hello
"${cmd[@]}" >>"$log" 2>&1 || true

for w in $workloads; do
    say "$w"
    for s in cold warm touch; do
        n=$reps
        [ "$w" != bigfile ] || n=$big_reps
        for rep in $(seq 1 "$n"); do
            [ "$s" != touch ] || touch_source "$w"
            both "$w" "$s" "$rep"
        done
    done
    if [ "$w" = bigfile ]; then
        say "push and pull"
        push_pull
    fi
    mk_reset
    bh_reset
done

# ---- report ----
stats() { # median min max of the numbers on stdin, or nothing
    sort -g | awk '{a[NR]=$1} END {if (NR) {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}}'
}
col() { # builder workload scenario field -> the values
    awk -v b="$1" -v w="$2" -v s="$3" -v f="$4" '$1==b && $2==w && $3==s && $4!="fail" {print $f}' "$res"
}
target_of() {
    case $1/$2 in
    bigfile/cold) echo 0.35 ;;
    */cold | */touch) echo 0.5 ;;
    */warm) echo 0.1 ;;
    */push | */pull) echo 0.8 ;;
    esac
}
mib() { awk '{printf "%.0f", $1 / 1024}'; }
row() { # workload scenario mkimg-builder other-builder
    local w=$1 s=$2 a=$3 o=$4 ma mi mx oa oi ox ratio met tgt rss_a rss_o na label=$1
    [ "$s" != push ] && [ "$s" != pull ] || label="$s $w"
    read -r ma mi mx <<<"$(col "$a" "$w" "$s" 4 | stats)" || true
    read -r oa oi ox <<<"$(col "$o" "$w" "$s" 4 | stats)" || true
    rss_a=$(col "$a" "$w" "$s" 5 | sort -g | tail -n 1 | mib)
    rss_o=$(col "$o" "$w" "$s" 5 | sort -g | tail -n 1 | mib)
    tgt=$(target_of "$w" "$s")
    if [ -n "${ma:-}" ] && [ -n "${oa:-}" ]; then
        ratio=$(echo "scale=3; $ma / $oa" | bc | sed 's/^\./0./')
        met=$(echo "$ratio <= $tgt" | bc)
        [ "$met" = 1 ] && met=yes || met="**no**"
        printf '| %s | %s | %s–%s | %s | %s–%s | %s | ≤ %s | %s | %s | %s |\n' "$label" "$ma" "$mi" "$mx" \
            "$oa" "$oi" "$ox" "$ratio" "$tgt" "$met" "$rss_a" "$rss_o"
    else
        na="n/a"
        if failed "$a" "$w"; then na="failed: $(cat "$work/fail-$a-$w")"; fi
        if [ "$s" = push ] || [ "$s" = pull ]; then
            mk_has "$s" || na="n/a (mkimg $s not implemented)"
        fi
        [ -n "${ma:-}" ] || { ma=$na; mi=; mx=; rss_a=; }
        [ -n "${oa:-}" ] || { oa="n/a"; oi=; ox=; rss_o=; }
        printf '| %s | %s | %s | %s | %s | n/a | ≤ %s | n/a | %s | %s |\n' "$label" "$ma" \
            "${mi:+$mi–$mx}" "$oa" "${oi:+$oi–$ox}" "$tgt" "$rss_a" "$rss_o"
    fi
}
header() { # other builder's name
    echo "| workload | mkimg median s | mkimg min–max | $1 median s | $1 min–max | ratio | target | met | mkimg max RSS MiB | $1 max RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
}
report() {
    local w s
    echo "# mkimg vs Buildah ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- storage: both stores on a journaled ext4 loop file; Buildah $(buildah --version | awk '{print $3}') with the overlay driver (native overlay diff: $("${bh[@]}" info 2>/dev/null | awk -F'"' '/Native Overlay Diff/ {print $4}')), runc $(runc --version | awk 'NR==1 {print $3}'), cgroups v$(stat -fc %T /sys/fs/cgroup | grep -q cgroup2 && echo 2 || echo 1); skopeo $(skopeo --version | awk '{print $3}'); mkimg $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown) as $mkimg (store: OCI layout + snapshots, layers stored uncompressed)"
    echo "- method: buildah bud --layers --network host --pull=never --runtime runc; a warm-up build of hello per builder, then $reps runs per scenario and builder ($big_reps for bigfile, push and pull), alternating; sync before each run; times are wall seconds, RSS is /usr/bin/time's max RSS"
    echo "- workloads: see bench/workloads.sh (bigfile ${BIG_MB:-1024} MiB, ignore ${IGNORE_MB:-500} MiB excluded); ratio = mkimg median / Buildah median"
    for s in cold warm touch; do
        echo
        case $s in
        cold) echo "## cold (fresh store holding only the base image)" ;;
        warm) echo "## warm (rebuild, nothing changed)" ;;
        touch) echo "## touch (one COPY source changed)" ;;
        esac
        echo
        header buildah
        for w in $workloads; do row "$w" "$s" mkimg buildah; done
    done
    case " $workloads " in *" bigfile "*)
        echo
        echo "## push and pull of the bigfile image (loopback registry; mkimg vs skopeo copy)"
        echo
        echo "Push: both send the uncompressed layers (mkimg push --compression-format none). Pull: both unpack (mkimg into its snapshots, skopeo into containers-storage overlay)."
        echo
        header skopeo
        row bigfile push mkimg skopeo
        row bigfile pull mkimg skopeo
        ;;
    esac
    echo
    echo "## peak RSS (max over all runs of the workload; target: flat in layer size, bigfile ≤ 64 MiB)"
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
