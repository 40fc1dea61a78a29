#!/usr/bin/env bash
# tests/diff/run.sh - the differential suite: builds every case of tests/diff/cases/ with
# mkimg and with Buildah from the same busybox base and compares the two images (root file
# system and config, tests/diff/compare.py). Where BuildKit and Buildah differ, mkimg follows
# BuildKit; each such place is a row of tests/diff/DIFFERENCES.md, and only those rows may
# explain a difference. One "ok"/"not ok" line per case.
#
# A case is a directory: a Dockerfile written the way projects write them, its context, and
# optionally setup.sh (run in a copy of the case to make what git cannot keep: modes,
# owners, xattrs, archives, links; removed before the build) and build-args (one K=V a
# line). Usage: tests/diff/run.sh [PATTERN]   (only the cases whose name contains PATTERN);
# MKIMG_DIFF_JOBS (default 2) cases at a time, MKIMG_DIFF_VERBOSE=1 shows the allowed lines.
. "$(dirname "$0")/../lib/test-lib.sh"

here=$MKIMG_TOP/tests/diff
filter=${1:-}
if ! command -v buildah >/dev/null || ! command -v runc >/dev/null; then
    t_skip "buildah or runc not installed (make deps installs them)"
    t_done
    exit 0
fi
# Buildah keeps its own store here; crun refuses hybrid cgroups, so runc, and chroot
# isolation (no network or cgroup set-up needed for these builds).
B=(buildah --root "$T/buildah" --runroot "$T/buildah-run" --storage-driver vfs)
BUD=(bud --runtime runc --isolation chroot --pull=never --format docker -q)
cleanup_buildah() {
    "${B[@]}" rmi -a -f >/dev/null 2>&1
    rm -rf "$T/buildah" "$T/buildah-run" 2>/dev/null
    t_cleanup
}
trap cleanup_buildah EXIT

# The same base for both: the busybox root file system with minimal adduser/addgroup,
# imported by mkimg and handed to Buildah as an OCI archive of that very image.
t_busybox_rootfs "$T/bbroot" >/dev/null && t_user_tools "$T/bbroot"
"$MKIMG" import "$T/bbroot" busybox:latest >/dev/null &&
    "$MKIMG" save -o "$T/busybox.tar" busybox:latest &&
    id=$("${B[@]}" pull -q "oci-archive:$T/busybox.tar" 2>"$T/pull.err") &&
    "${B[@]}" tag "$id" busybox:latest
if [ -z "${id:-}" ]; then
    t_fail "the busybox base for both builders"
    sed 's/^/# /' "$T/pull.err"
    t_done
    exit 1
fi

# run_case NAME: builds both, compares; the lines in $T/NAME.log.
run_case() {
    local name=$1 ctx=$T/ctx/$1 log=$T/$1.log args=() bfile=()
    mkdir -p "$T/ctx" && cp -a "$here/cases/$name" "$ctx"
    if [ -f "$ctx/setup.sh" ]; then
        (cd "$ctx" && bash ./setup.sh) >>"$log" 2>&1 || { echo "setup.sh failed" >>"$log"; return 1; }
        rm "$ctx/setup.sh"
    fi
    # Buildah 1.28 reads no heredocs: such a case gives it an equivalent Dockerfile.buildah
    # (table row buildah-no-heredoc), so mkimg's heredocs are checked against plain RUNs.
    if [ -f "$ctx/Dockerfile.buildah" ]; then
        grep -q '^# diff-allow: buildah-no-heredoc' "$ctx/Dockerfile" ||
            { echo "Dockerfile.buildah without '# diff-allow: buildah-no-heredoc'" >>"$log"; return 1; }
        mv "$ctx/Dockerfile.buildah" "$T/$name.Dockerfile.buildah"
        bfile=(-f "$T/$name.Dockerfile.buildah")
    fi
    if [ -f "$ctx/build-args" ]; then
        while IFS= read -r a; do [ -n "$a" ] && args+=(--build-arg "$a"); done <"$ctx/build-args"
        rm "$ctx/build-args"
    fi
    "$MKIMG" build -q ${args[@]+"${args[@]}"} -t "$name" "$ctx" >>"$log" 2>&1 ||
        { echo "mkimg build failed" >>"$log"; return 1; }
    "${B[@]}" "${BUD[@]}" ${args[@]+"${args[@]}"} ${bfile[@]+"${bfile[@]}"} -t "$name" "$ctx" >>"$log" 2>&1 ||
        { echo "buildah bud failed" >>"$log"; return 1; }
    "${B[@]}" push -q --format docker "$name" "oci:$T/oci-$name:$name" >>"$log" 2>&1 ||
        { echo "buildah push failed" >>"$log"; return 1; }
    python3 "$here/compare.py" "$here/DIFFERENCES.md" "$here/cases/$name" \
        "$MKIMG_ROOT" "$name:latest" "$T/oci-$name" "$name" >>"$log" 2>&1
}

# Two cases at a time (MKIMG_DIFF_JOBS): the builds mostly wait on the disk and on mounts.
names=()
for dir in "$here"/cases/*/; do
    name=$(basename "$dir")
    case "$name" in *"$filter"*) names+=("$name") ;; esac
done
running=0
for name in "${names[@]}"; do
    (run_case "$name" && touch "$T/$name.ok") &
    running=$((running + 1))
    if [ "$running" -ge "${MKIMG_DIFF_JOBS:-2}" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
for name in "${names[@]}"; do
    if [ -e "$T/$name.ok" ]; then
        t_pass "$name"
        [ -n "${MKIMG_DIFF_VERBOSE:-}" ] && sed 's/^/# /' "$T/$name.log"
    else
        t_fail "$name"
        grep -v '^allowed' "$T/$name.log" | tail -30 | sed 's/^/# /'
    fi
done
# The comparison can fail: the first case's mkimg image against the second case's Buildah
# image must show differences (a reader that saw empty trees would pass every case).
cases=("$here"/cases/*/)
a=$(basename "${cases[0]}") b=$(basename "${cases[1]}")
if [ -z "$filter" ] && [ -s "$T/$a.log" ] && [ -s "$T/$b.log" ]; then
    if python3 "$here/compare.py" "$here/DIFFERENCES.md" "$here/cases/$a" "$MKIMG_ROOT" \
        "$a:latest" "$T/oci-$b" "$b" >"$T/vacuous.log" 2>&1; then
        t_fail "the comparison tells $a from $b"
    else
        t_pass "the comparison tells $a from $b ($(grep -c '^DIFF' "$T/vacuous.log") differences)"
    fi
fi
t_done
