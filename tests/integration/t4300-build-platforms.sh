#!/usr/bin/env bash
# build --platform linux/amd64,linux/arm64: one image per platform under one name (an OCI
# index), RUN for arm64 through QEMU user emulation (binfmt_misc, F flag), BuildKit's
# automatic platform args and their scoping, FROM --platform=$BUILDPLATFORM running natively
# once per target, the platform in the cache key, and the missing-emulator error before the
# build starts.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$(dirname "$0")/../lib/platform.sh"
[ "$(uname -m)" = x86_64 ] || { t_skip "the test is written for an x86-64 host"; t_done; exit; }
t_platform_require
t_busybox_rootfs "$T/amdroot"
"$MKIMG" import "$T/amdroot" busybox >/dev/null
"$MKIMG" import --platform linux/arm64 "$T/arm64root" busybox >/dev/null

# ---- the done-when build: uname -m per platform, an index listing both ----
mkdir -p "$T/ctx"
cat >"$T/ctx/Dockerfile" <<'DF'
FROM busybox
RUN uname -m >/arch
RUN echo "[$TARGETARCH]" >/unscoped
ARG TARGETARCH
ARG TARGETPLATFORM
ARG BUILDPLATFORM
RUN echo "$TARGETARCH $TARGETPLATFORM $BUILDPLATFORM" >/args
DF
"$MKIMG" build --platform linux/amd64,linux/arm64 -t multi -o "type=local,dest=$T/out" \
    --iidfile "$T/iid" "$T/ctx" >"$T/id" 2>"$T/log"; rc=$?
t_eq "build for two platforms" "$rc" 0
t_eq "amd64 RUN ran on x86_64" "$(cat "$T/out/linux_amd64/arch" 2>&1)" x86_64
t_eq "arm64 RUN ran on aarch64 (emulated)" "$(cat "$T/out/linux_arm64/arch" 2>&1)" aarch64
skopeo inspect --raw "oci:$MKIMG_ROOT:multi:latest" >"$T/raw" 2>&1
t_eq "the tag is an OCI index" "$(jq -r .mediaType "$T/raw")" application/vnd.oci.image.index.v1+json
t_eq "the index lists both, in --platform order" \
    "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(",")' "$T/raw")" \
    linux/amd64,linux/arm64
t_eq "the printed ID is the index digest" "$(cat "$T/id")" "sha256:$(sha256sum <"$MKIMG_ROOT/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="multi:latest") | .digest' "$MKIMG_ROOT/index.json" | cut -d: -f2)" | cut -d' ' -f1)"
t_eq "--iidfile has the index digest too" "$(cat "$T/iid" 2>&1)" "$(cat "$T/id")"
t_eq "the arm64 image's config says linux/arm64" \
    "$("$MKIMG" inspect --platform linux/arm64 multi | jq -r '.[0].Os + "/" + .[0].Architecture')" linux/arm64
t_eq "TARGETARCH is not in a stage's scope until redeclared" "$(cat "$T/out/linux_arm64/unscoped")" "[]"
t_eq "redeclared platform args (arm64)" "$(cat "$T/out/linux_arm64/args")" "arm64 linux/arm64 linux/amd64"
t_eq "redeclared platform args (amd64)" "$(cat "$T/out/linux_amd64/args")" "amd64 linux/amd64 linux/amd64"
t_eq "no untagged per-platform entries left in the store index" \
    "$(jq '[.manifests[] | select(.annotations == null)] | length' "$MKIMG_ROOT/index.json")" 0

# ---- outputs for several platforms, as BuildKit writes them ----
"$MKIMG" build -q --platform linux/amd64,linux/arm64 -t multi -o "type=oci,dest=$T/o.tar" \
    -o "type=oci,dest=$T/odir/" -o "type=tar,dest=$T/t.tar" "$T/ctx" >/dev/null 2>"$T/err"
t_eq "oci, oci dir and tar outputs" "$?:$(cat "$T/err")" 0:
t_eq "the OCI archive holds the index of both" \
    "$(skopeo inspect --raw "oci-archive:$T/o.tar:multi:latest" 2>&1 | jq -r '[.manifests[].platform.architecture] | join(",")')" \
    amd64,arm64
t_eq "so does the OCI layout" \
    "$(skopeo inspect --raw "oci:$T/odir:multi:latest" 2>&1 | jq -r '[.manifests[].platform.architecture] | join(",")')" \
    amd64,arm64
t_ok "skopeo copies the arm64 image out of the layout" \
    skopeo copy --override-arch arm64 "oci:$T/odir:multi:latest" "oci:$T/arm-only:x"
t_eq "the tar is split per platform" \
    "$(tar -xOf "$T/t.tar" linux_arm64/arch 2>/dev/null) $(tar -xOf "$T/t.tar" linux_amd64/arch 2>/dev/null)" \
    "aarch64 x86_64"
"$MKIMG" build -q --platform linux/amd64,linux/arm64 -o "type=docker,dest=$T/d.tar" "$T/ctx" >/dev/null 2>"$T/err"
t_eq "a Docker archive of several platforms is a usage error" "$?:$(cat "$T/err")" \
    "2:mkimg: build: a Docker archive holds one platform: use type=oci for several"
t_ok "save of a name holding two platforms" "$MKIMG" save -o "$T/s.tar" multi
t_eq "keeps both" \
    "$(skopeo inspect --raw "oci-archive:$T/s.tar:multi:latest" 2>&1 | jq '.manifests | length')" 2

# ---- the cross-compile pattern: the build stage runs natively, once per target ----
# A cache mount counts the build stage's runs (across the whole build).
mkdir -p "$T/cross"
cat >"$T/cross/Dockerfile" <<'DF'
FROM --platform=$BUILDPLATFORM busybox AS build
ARG TARGETARCH
RUN --mount=type=cache,target=/c,id=runs1 echo run >>/c/n && uname -m >/ran-on && echo "$TARGETARCH" >/target && wc -l </c/n >/runs
FROM busybox
COPY --from=build /ran-on /target /runs /
DF
"$MKIMG" build --progress=plain --platform linux/amd64,linux/arm64 -t cross \
    -o "type=local,dest=$T/cout" "$T/cross" >/dev/null 2>"$T/clog"; rc=$?
t_eq "cross build" "$rc" 0
t_eq "the arm64 image's build stage ran natively" "$(cat "$T/cout/linux_arm64/ran-on" 2>&1)" x86_64
t_eq "for the arm64 target" "$(cat "$T/cout/linux_arm64/target" 2>&1)" arm64
t_eq "the amd64 one's for amd64" "$(cat "$T/cout/linux_amd64/target" 2>&1)" amd64
t_eq "the build stage ran once per target (TARGETARCH differs): twice in all" \
    "$(cat "$T/cout/linux_amd64/runs" "$T/cout/linux_arm64/runs" 2>&1 | sort -n | tail -1)" 2
# Without TARGETARCH nothing differs between the targets: the second one reuses the first.
sed -i 's/^ARG TARGETARCH$//; s/id=runs1/id=runs2/; s/echo "$TARGETARCH" >\/target/echo x >\/target/' "$T/cross/Dockerfile"
"$MKIMG" build --progress=plain --platform linux/amd64,linux/arm64 -t cross2 \
    -o "type=local,dest=$T/cout2" "$T/cross" >/dev/null 2>"$T/clog2"
t_eq "a build stage that does not use TARGETARCH runs once in all" \
    "$(cat "$T/cout2/linux_amd64/runs" "$T/cout2/linux_arm64/runs" 2>&1 | tr '\n' ' ')" "1 1 "
t_grep "the log shows each platform's steps behind it" '^\[linux/arm64\] \[[0-9]+/[0-9]+\] COPY --from=build' "$T/clog2"

# ---- one platform's RUN fails: the build fails, saying which platform ----
mkdir -p "$T/fail"
printf 'FROM busybox\nRUN [ "$(uname -m)" = x86_64 ] || exit 3\n' >"$T/fail/Dockerfile"
"$MKIMG" build -q --platform linux/amd64,linux/arm64 -t failed "$T/fail" >/dev/null 2>"$T/err"; rc=$?
t_eq "a RUN failing for arm64 fails the build" "$rc" 1
t_eq "naming the platform" "$(cat "$T/err")" \
    'mkimg: Dockerfile:2: building for linux/arm64: RUN "[ "$(uname -m)" = x86_64 ] || exit 3": exit status 3'
t_fails "and tags nothing" "$MKIMG" inspect failed

# ---- COPY --from=IMAGE takes the target platform's image ----
mkdir -p "$T/cf"
printf 'FROM scratch\nCOPY --from=busybox /bin/busybox /bb\n' >"$T/cf/Dockerfile"
"$MKIMG" build -q --platform linux/amd64,linux/arm64 -o "type=local,dest=$T/cfout" "$T/cf" >/dev/null 2>&1
elf_machine() { od -An -tx1 -j18 -N2 "$1" 2>&1 | tr -d ' \n'; }
t_eq "COPY --from=busybox for arm64 copies the aarch64 busybox" "$(elf_machine "$T/cfout/linux_arm64/bb")" b700
t_eq "and for amd64 the x86-64 one" "$(elf_machine "$T/cfout/linux_amd64/bb")" 3e00

# ---- the platform is part of the cache key, and --explain-cache names it ----
mkdir -p "$T/sc"
echo data >"$T/sc/f"
printf 'FROM scratch\nCOPY f /f\n' >"$T/sc/Dockerfile"
"$MKIMG" build --explain-cache --platform linux/amd64 -t sc "$T/sc" >/dev/null 2>&1
"$MKIMG" build --progress=plain --explain-cache --platform linux/arm64 -t sc "$T/sc" >/dev/null 2>"$T/elog"
t_grep "another platform misses the cache, and says why" '=> cache miss: platform changed$' "$T/elog"
t_eq "a scratch image gets the target platform" \
    "$("$MKIMG" inspect sc | jq -r '.[0].Architecture')" arm64

# ---- no emulator: one line before anything runs; a stage without RUN needs none ----
missing=
for a in s390x:s390x riscv64:riscv64 ppc64le:ppc64le mips64le:mips64el loong64:loongarch64; do
    [ -e "$BINFMT/qemu-${a#*:}" ] || { missing=${a%%:*}; qemu=qemu-${a#*:}; break; }
done
if [ -n "$missing" ]; then
    "$MKIMG" import --platform "linux/$missing" "$T/amdroot" busybox >/dev/null
    "$MKIMG" build --platform "linux/amd64,linux/$missing" -t nope "$T/ctx" >"$T/out2" 2>"$T/err"; rc=$?
    t_eq "a RUN without an emulator fails (exit 1)" "$rc" 1
    t_eq "with one line naming the platform and the package" "$(cat "$T/err")" \
        "mkimg: Dockerfile:2: RUN for linux/$missing needs QEMU user emulation, but binfmt_misc handler \"$qemu\" is not registered in /proc/sys/fs/binfmt_misc (install qemu-user-static and binfmt-support)"
    t_fails "before any platform was built" "$MKIMG" inspect nope
    "$MKIMG" build --platform "linux/$missing" -t nope2 "$T/sc" >/dev/null 2>"$T/err"; rc=$?
    t_eq "a stage without RUN needs no emulator" "$rc:$(cat "$T/err" | grep -c mkimg:)" 0:0
else
    t_skip "every emulator is registered: no platform to test the missing-emulator error with"
fi
t_done
