#!/usr/bin/env bash
# an OCI index (and a Docker manifest list) of two platforms: pull takes the host's, or
# --platform's; a platform the index lacks is a clear error.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi
t_import_busybox
host=$("$MKIMG" inspect busybox | jq -r '.[0].Architecture')
other=arm64; [ "$host" = arm64 ] && other=amd64

# An OCI layout holding an index of the imported image and a copy claiming another arch.
L=$T/multi
mkdir -p "$L/blobs/sha256"
cp "$MKIMG_ROOT"/blobs/sha256/* "$L/blobs/sha256/"
put() { # FILE -> prints digest and size, stores the blob
    local d; d=$(sha256sum <"$1" | cut -d' ' -f1)
    cp "$1" "$L/blobs/sha256/$d"; echo "sha256:$d $(stat -c %s "$1")"
}
raw=$(skopeo inspect --raw "oci:$MKIMG_ROOT:busybox:latest")
cfg=$(echo "$raw" | jq -r .config.digest)
jq -c --arg a "$other" '.architecture = $a' "$MKIMG_ROOT/blobs/sha256/${cfg#sha256:}" >"$T/cfg2"
read -r c2 c2s < <(put "$T/cfg2")
echo "$raw" | jq -c --arg d "$c2" --argjson s "$c2s" '.config.digest = $d | .config.size = $s' >"$T/m2"
printf '%s' "$raw" >"$T/m1"
read -r m1 m1s < <(put "$T/m1")
read -r m2 m2s < <(put "$T/m2")
jq -nc --arg m1 "$m1" --argjson s1 "$m1s" --arg m2 "$m2" --argjson s2 "$m2s" \
    --arg h "$host" --arg o "$other" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [
      {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m2, size: $s2,
       platform: {os: "linux", architecture: $o}},
      {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m1, size: $s1,
       platform: {os: "linux", architecture: $h}}]}' >"$T/idx"
read -r ix ixs < <(put "$T/idx")
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
jq -nc --arg d "$ix" --argjson s "$ixs" '{schemaVersion: 2, manifests: [{mediaType:
    "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "multi"}}]}' >"$L/index.json"
if ! skopeo copy -q --all --dest-tls-verify=false "oci:$L:multi" "docker://$REG/multi/bb:1" \
    >"$T/sk" 2>&1; then
    t_fail "skopeo pushes the index"; sed 's/^/# /' "$T/sk" | tail -5; t_done; exit 1
fi

export MKIMG_ROOT=$T/s2
t_ok "pull an index" "$MKIMG" pull -q "$REG/multi/bb:1"
t_eq "the host's platform is picked" "$("$MKIMG" inspect "$REG/multi/bb:1" | jq -r '.[0].Architecture')" "$host"
want=$(skopeo inspect --raw --tls-verify=false "docker://$REG/multi/bb:1" |
    jq -r --arg h "$host" '.manifests[] | select(.platform.architecture == $h) | .digest')
t_eq "its manifest digest is the index entry's" "$("$MKIMG" inspect "$REG/multi/bb:1" | jq -r '.[0].Digest')" "$want"
t_ok "pull --platform" "$MKIMG" pull -q --platform "linux/$other" "$REG/multi/bb:1"
t_eq "--platform picks the other" "$("$MKIMG" inspect "$REG/multi/bb:1" | jq -r '.[0].Architecture')" "$other"
"$MKIMG" pull -q --platform linux/s390x "$REG/multi/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing platform fails" "$rc" 1
t_eq "missing platform message" "$(cat "$T/err")" \
    "mkimg: $REG/multi/bb:1: no image for linux/s390x in the index (it has: linux/$other, linux/$host)"

# the same as a Docker manifest list
if skopeo copy -q --all --format v2s2 --dest-tls-verify=false "oci:$L:multi" \
    "docker://$REG/multi/docker:1" >"$T/sk" 2>&1; then
    mt=$(skopeo inspect --raw --tls-verify=false "docker://$REG/multi/docker:1" | jq -r .mediaType)
    t_eq "skopeo made a Docker manifest list" "$mt" \
        application/vnd.docker.distribution.manifest.list.v2+json
    export MKIMG_ROOT=$T/s3
    t_ok "pull a Docker manifest list" "$MKIMG" pull -q "$REG/multi/docker:1"
    t_eq "host platform from the list" \
        "$("$MKIMG" inspect "$REG/multi/docker:1" | jq -r '.[0].Architecture')" "$host"
    t_eq "the Docker manifest is kept byte for byte" \
        "$("$MKIMG" inspect "$REG/multi/docker:1" | jq -r '.[0].Digest')" \
        "$(skopeo inspect --raw --tls-verify=false "docker://$REG/multi/docker:1" |
            jq -r --arg h "$host" '.manifests[] | select(.platform.architecture == $h) | .digest')"
else
    t_skip "skopeo cannot convert the index to a Docker list here"
fi

t_done
