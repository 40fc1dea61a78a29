#!/usr/bin/env bash
# build --platform linux/amd64,linux/arm64 --push: every platform's image, then the index
# under the tag, read back by skopeo (inspect --raw, copy --override-arch arm64); push of a
# local name that holds several platforms; pull --platform A,B keeps both under one name.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"
. "$MKIMG_TOP/tests/lib/platform.sh"
[ "$(uname -m)" = x86_64 ] || { t_skip "the test is written for an x86-64 host"; t_done; exit; }
if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi
t_platform_require
t_busybox_rootfs "$T/amdroot"
"$MKIMG" import "$T/amdroot" busybox >/dev/null
"$MKIMG" import --platform linux/arm64 "$T/arm64root" busybox >/dev/null

mkdir -p "$T/ctx"
printf 'FROM busybox\nRUN uname -m >/arch\n' >"$T/ctx/Dockerfile"
"$MKIMG" build --platform linux/amd64,linux/arm64 -t "$REG/app/multi:1" --push "$T/ctx" \
    >/dev/null 2>"$T/log"; rc=$?
t_eq "build --push for two platforms" "$rc" 0
t_grep "says what it pushed" "^pushed $REG/app/multi:1@sha256:" "$T/log"
skopeo inspect --tls-verify=false --raw "docker://$REG/app/multi:1" >"$T/raw" 2>&1
t_eq "the registry has an OCI index under the tag" "$(jq -r .mediaType "$T/raw")" \
    application/vnd.oci.image.index.v1+json
t_eq "listing both platforms" \
    "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(",")' "$T/raw")" \
    linux/amd64,linux/arm64
t_eq "the digest pushed is the index's" "$(grep -o 'sha256:[0-9a-f]*' "$T/log" | tail -1)" \
    "sha256:$(sha256sum <"$T/raw" | cut -d' ' -f1)"
t_ok "skopeo copy --override-arch arm64" \
    skopeo copy --src-tls-verify=false --override-arch arm64 "docker://$REG/app/multi:1" "oci:$T/arm:x"
t_eq "gives the arm64 image" "$(skopeo inspect --config "oci:$T/arm:x" | jq -r .architecture)" arm64
mkdir -p "$T/armfs"
for l in $(jq -r '.layers[].digest' "$T/arm/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/arm/index.json" | cut -d: -f2)"); do
    tar -xzf "$T/arm/blobs/sha256/${l#sha256:}" -C "$T/armfs" 2>/dev/null
done
t_eq "whose RUN ran as aarch64" "$(cat "$T/armfs/arch" 2>&1)" aarch64

# A local name that holds two platforms pushes as an index too (mkimg push).
t_ok "push busybox (two platforms)" "$MKIMG" push -q busybox "$REG/lib/bb:1"
t_eq "as an index" "$(skopeo inspect --tls-verify=false --raw "docker://$REG/lib/bb:1" | jq -r '.manifests | length')" 2

# pull --platform A,B keeps both under one name.
export MKIMG_ROOT=$T/store2
t_ok "pull --platform linux/arm64,linux/amd64" \
    "$MKIMG" pull -q --platform linux/arm64,linux/amd64 "$REG/app/multi:1"
"$MKIMG" images >"$T/images"
t_eq "both platforms under the one name" "$(grep -c "^$REG/app/multi " "$T/images")" 2
t_eq "inspect --platform linux/arm64 of the pulled name" \
    "$("$MKIMG" inspect --platform linux/arm64 "$REG/app/multi:1" | jq -r '.[0].Architecture')" arm64
t_done
