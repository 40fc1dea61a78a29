#!/usr/bin/env bash
# buildah-bud cases: multi-stage-builds, copy-from, copy-multistage-paths,
# copy-from-stage-scoped-arg, target.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox docker.io/library/busybox docker.io/library/alpine \
    ubuntu:latest
# ubuntu: the busybox base with a bash (busybox sh is enough for these cases).
cp -a "$T/bbroot" "$T/ubroot" && ln -s busybox "$T/ubroot/bin/bash"
t_ok "import ubuntu" "$MKIMG" import "$T/ubroot" ubuntu
cp -a "$T/bbroot" "$T/tiroot" && mkdir -p "$T/tiroot/home/podman" &&
    echo 20221018 >"$T/tiroot/home/podman/testimage-id"
t_ok "import testimage" "$MKIMG" import "$T/tiroot" quay.io/libpod/testimage:20221018

# ---- multi-stage-builds
c=$BUD/multi-stage-builds
t_ok "multi-stage-builds: index" bud_build -t ms-index -f "$c/Dockerfile.index" "$c"
bud_unpack ms-index:latest
t_ok "multi-stage-builds: index: file from stage 0" cmp "$T/u/rootfs/Dockerfile.index" "$c/Dockerfile.index"
t_ok "multi-stage-builds: index: passwd from the final base" test -s "$T/u/rootfs/etc/passwd"

t_ok "multi-stage-builds: name" bud_build -t ms-name -f "$c/Dockerfile.name" "$c"
bud_unpack ms-name:latest
t_ok "multi-stage-builds: name: file copied" cmp "$T/u/rootfs/Dockerfile.name" "$c/Dockerfile.name"
t_ok "multi-stage-builds: name: only the final stage is kept" test ! -e "$T/u/rootfs/etc/passwd"

t_ok "multi-stage-builds: mixed" bud_build -t ms-mixed -f "$c/Dockerfile.mixed" "$c"
bud_unpack ms-mixed:latest
for f in name index mixed; do
    t_ok "multi-stage-builds: mixed: Dockerfile.$f" cmp "$T/u/rootfs/Dockerfile.$f" "$c/Dockerfile.$f"
done

t_ok "multi-stage-builds: arg" bud_build -t ms-arg --build-arg SECRET=secretthings \
    -f "$c/Dockerfile.arg" "$c"
bud_unpack ms-arg:latest
t_eq "multi-stage-builds: arg: ARG is per stage" "$(cat "$T/u/rootfs/test_file")" ""
bud_cfg ms-arg:latest '.history[].created_by' >"$T/hist"
t_ok "multi-stage-builds: arg: value in no history" bash -c "! grep -q secretthings '$T/hist'"

t_ok "multi-stage-builds: arg_in_stage" bud_build -t ms-ais -f "$c/Dockerfile.arg_in_stage" "$c"
t_ok "multi-stage-builds: arg_in_copy" bud_build -t ms-aic -f "$c/Dockerfile.arg_in_copy" "$c"
bud_unpack ms-aic:latest
t_ok "multi-stage-builds: arg_in_copy: copied" test -e "$T/u/rootfs/bin/true_copy"

bbdigest=$(skopeo inspect "oci:$MKIMG_ROOT:busybox:latest" | jq -r .Digest)
for f in reused reused2; do
    t_ok "multi-stage-builds: $f" bud_build -t "ms-$f" -f "$c/Dockerfile.$f" "$c"
    t_eq "multi-stage-builds: $f: base.name annotation" \
        "$(bud_manifest "ms-$f:latest" '.annotations["org.opencontainers.image.base.name"]')" \
        '"docker.io/library/busybox:latest"'
    t_eq "multi-stage-builds: $f: base.digest annotation" \
        "$(bud_manifest "ms-$f:latest" '.annotations["org.opencontainers.image.base.digest"]')" \
        "\"$bbdigest\""
done

t_ok "multi-stage-builds: extended" bud_build -t ms-ext -f "$c/Dockerfile.extended" "$c"
bud_unpack ms-ext:latest
t_ok "multi-stage-builds: extended: preCommit" test -e "$T/u/rootfs/tmp/preCommit"
t_ok "multi-stage-builds: extended: no postCommit" test ! -e "$T/u/rootfs/tmp/postCommit"

# ---- copy-from
c=$BUD/copy-from
t_ok "copy-from: image never used in FROM" bud_build -t cf -f "$c/Dockerfile" "$c"
bud_unpack cf:latest
t_eq "copy-from: copied content" "$(cat "$T/u/rootfs/home/busyboxpodman/copied-testimage-id")" 20221018
t_fails "copy-from: --from without =" bud_build -t cfbad -f "$c/Dockerfile.bad" "$c"
# buildah lists COPY's flags; BuildKit (followed here) says which flag lacks its value.
t_grep "copy-from: --from without = message" 'Dockerfile.bad:2: missing a value on flag: from$' "$T/out"
t_fails "copy-from: a stage copying from itself" bud_build -t cfbad2 -f "$c/Dockerfile2.bad" "$c"
t_grep "copy-from: a stage copying from itself: message" '--from=build.*(no stage or image found with that name|names no earlier stage)' "$T/out"
t_ok "copy-from: Dockerfile3 (pristine image, not the stage)" bud_build -t cf3 -f "$c/Dockerfile3" "$c"
bud_unpack cf3:latest
t_ok "copy-from: Dockerfile3: paste copied" test -e "$T/u/rootfs/test/paste"
t_ok "copy-from: Dockerfile4" bud_build -t cf4 -f "$c/Dockerfile4" "$c"
bud_unpack cf4:latest
t_ok "copy-from: Dockerfile4: nl copied" test -e "$T/u/rootfs/test/nl"
t_ok "copy-from: Dockerfile2 (FROM a stage)" bud_build -t cf2 -f "$c/Dockerfile2" "$c"
id1=$(bud_cfg cf2:latest .rootfs.diff_ids)
t_ok "copy-from: Dockerfile2 rebuilt" bud_build -t cf2 -f "$c/Dockerfile2" "$c"
t_eq "copy-from: Dockerfile2: rebuild runs no RUN" "$(grep -c '=> CACHED' "$T/out")" 2
t_eq "copy-from: Dockerfile2: rebuild gives the same layers" "$(bud_cfg cf2:latest .rootfs.diff_ids)" "$id1"

# ---- copy-multistage-paths
c=$BUD/copy-multistage-paths
t_ok "copy-multistage-paths: absolute" bud_build --no-cache -t cmp-abs -f "$c/Dockerfile.absolute" "$c"
t_grep "copy-multistage-paths: absolute: parents 755" '^permissions=755$' "$T/out"
t_ok "copy-multistage-paths: relative" bud_build --no-cache -t cmp-rel -f "$c/Dockerfile.relative" "$c"
t_grep "copy-multistage-paths: relative: parents 755" '^permissions=755$' "$T/out"
t_fails "copy-multistage-paths: invalid_from" bud_build -t cmp-bad -f "$c/Dockerfile.invalid_from" "$c"
t_grep "copy-multistage-paths: invalid_from message" 'Dockerfile.invalid_from:3: missing a value on flag: from$' "$T/out"

# ---- copy-from-stage-scoped-arg
c=$BUD/copy-from-stage-scoped-arg
t_ok "copy-from-stage-scoped-arg: Containerfile" bud_build -t csa -f "$c/Containerfile" "$c"
bud_unpack csa:latest
t_eq "copy-from-stage-scoped-arg: quoted --from picks staging" "$(tail -1 "$T/u/rootfs/variant")" build:staging
t_ok "copy-from-stage-scoped-arg: override" bud_build -t csa2 \
    -f "$c/Containerfile.multi-copy-arg-override" "$c"
bud_unpack csa2:latest
t_eq "copy-from-stage-scoped-arg: first copy from staging" "$(tail -1 "$T/u/rootfs/variant_first")" build:staging
t_eq "copy-from-stage-scoped-arg: second copy from dev" "$(tail -1 "$T/u/rootfs/variant_second")" build:dev

# ---- target
c=$BUD/target
t_ok "target: --target mytarget" bud_build -t tgt --target mytarget "$c"
bud_unpack tgt:latest
t_ok "target: /2 present" test -e "$T/u/rootfs/2"
t_ok "target: /3 absent" test ! -e "$T/u/rootfs/3"
t_ok "target: hello copied from stage 0" test -e "$T/u/rootfs/hello"
t_done
