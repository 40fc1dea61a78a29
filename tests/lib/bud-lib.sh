# tests/lib/bud-lib.sh - helpers for the buildah-bud conformance tests (t46NN), sourced after
# test-lib.sh. The cases are read in place from $MKIMG_CONFORMANCE/buildah-bud/cases; a test
# that must add files copies a case dir to $T first.
BUD=${MKIMG_CONFORMANCE:-$MKIMG_TOP/../shared/conformance}/buildah-bud/cases
if [ ! -d "$BUD" ]; then
    echo "ok 1 - # SKIP buildah-bud conformance data not found"
    echo "1..1"
    exit 0
fi

# No registry is reachable: the local busybox rootfs stands in for every base a case pulls.
bud_images() { # NAME...
    if [ ! -d "$T/bbroot" ]; then
        t_busybox_rootfs "$T/bbroot" || return 1
        # Directories the cases expect of alpine/ubuntu (mkdir without -p under them).
        mkdir -p "$T/bbroot/usr/local" "$T/bbroot/usr/lib" "$T/bbroot/var/lib" "$T/bbroot/home"
        ln -s ../../bin/busybox "$T/bbroot/usr/bin/env"
        t_user_tools "$T/bbroot"
    fi
    local n
    for n in "$@"; do "$MKIMG" import "$T/bbroot" "$n" >/dev/null || return 1; done
}
# bud_build ARGS...: builds, keeping the combined output in $T/out.
# bud_build ARGS: builds; the log in $T/out, RUN output lines without their "#STEP " prefix.
bud_build() {
    local rc=0
    "$MKIMG" build --progress=plain "$@" >"$T/out.raw" 2>&1 || rc=$?
    sed -E 's/^#[0-9]+ ([0-9]+\.[0-9]{3} )?//' "$T/out.raw" >"$T/out"
    return $rc
}
# bud_unpack REF: the image's rootfs in $T/u/rootfs.
bud_unpack() {
    rm -rf "$T/u"
    umoci unpack --image "$MKIMG_ROOT:$1" "$T/u" >/dev/null 2>&1
}
# bud_cfg REF JQ: the raw config blob (skopeo's --config would drop Docker-only fields such as
# OnBuild, Shell and Healthcheck).
bud_cfg() {
    local d
    d=$(skopeo inspect --raw "oci:$MKIMG_ROOT:$1" | jq -r .config.digest) || return 1
    jq -c "$2" "$MKIMG_ROOT/blobs/sha256/${d#sha256:}"
}
bud_manifest() { skopeo inspect --raw "oci:$MKIMG_ROOT:$1" | jq -c "$2"; }
# bud_na CASE REASON: a case (or part) that does not apply to a Docker-compatible builder.
bud_na() { t_skip "$1: not applicable: $2"; }
