#!/usr/bin/env bash
# push to and pull from Debian's docker-registry over plain HTTP on 127.0.0.1, checked against
# skopeo both ways; a second push uploads no blob; errors name the reference.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi

t_import_busybox
id=$("$MKIMG" inspect busybox | jq -r '.[0].Id')

# mkimg push -> skopeo pull
"$MKIMG" push --digestfile "$T/pushed" busybox "$REG/test/bb:v1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push exits 0" "$rc" 0
digest=$(cat "$T/out")
t_grep "push prints the manifest digest" '^sha256:[0-9a-f]{64}$' "$T/out"
t_eq "--digestfile holds the digest" "$(cat "$T/pushed")" "$digest"
t_grep "push says what it uploads" '^uploading blob sha256:' "$T/err"
skopeo inspect --raw --tls-verify=false "docker://$REG/test/bb:v1" >"$T/raw" 2>&1
t_eq "the registry serves the pushed digest" "sha256:$(sha256sum <"$T/raw" | cut -d' ' -f1)" "$digest"
t_eq "layers travel gzip-compressed" "$(jq -r '.layers[0].mediaType' "$T/raw")" \
    application/vnd.oci.image.layer.v1.tar+gzip
t_eq "the config is the local image's" "$(jq -r .config.digest "$T/raw")" "$id"
if skopeo copy -q --src-tls-verify=false "docker://$REG/test/bb:v1" "oci:$T/sk:bb" >"$T/sk.out" 2>&1 &&
    umoci unpack --rootless --image "$T/sk:bb" "$T/skb" >"$T/umoci" 2>&1; then
    t_pass "skopeo pulls what mkimg pushed"
    t_ok "skopeo's tree equals the imported tree" diff -r --no-dereference "$T/bbroot" "$T/skb/rootfs"
else
    t_fail "skopeo pulls what mkimg pushed"; sed 's/^/# /' "$T/sk.out" "$T/umoci" | tail -5
fi

# a second push uploads nothing
posts=$(reg_count POST '/v2/test/bb/blobs/uploads/')
puts=$(reg_count PUT '/v2/test/bb/blobs/uploads/[^ ]*')
t_ok "second push" "$MKIMG" push busybox "$REG/test/bb:v1"
t_eq "second push starts no upload" "$(reg_count POST '/v2/test/bb/blobs/uploads/')" "$posts"
t_eq "second push sends no blob" "$(reg_count PUT '/v2/test/bb/blobs/uploads/[^ ]*')" "$puts"
t_eq "second push prints the same digest" "$("$MKIMG" push -q busybox "$REG/test/bb:v1")" "$digest"

# mkimg pull into a fresh store
export MKIMG_ROOT=$T/store2
"$MKIMG" pull "$REG/test/bb:v1" >"$T/pull.out" 2>"$T/pull.err"; rc=$?
t_eq "pull exits 0" "$rc" 0
t_eq "pull prints the image ID" "$(cat "$T/pull.out")" "$id"
"$MKIMG" inspect "$REG/test/bb:v1" >"$T/insp" 2>&1
t_eq "pulled image keeps the registry's manifest digest" "$(jq -r '.[0].Digest' "$T/insp")" "$digest"
t_eq "tagged as typed" "$(jq -r '.[0].RepoTags[0]' "$T/insp")" "$REG/test/bb:v1"
snap=$MKIMG_ROOT/snapshots/$(jq -r '.[0].RootFS.Layers[0]' "$T/insp" | cut -d: -f2)
t_ok "the layer is unpacked into its snapshot" diff -r --no-dereference "$T/bbroot" "$snap"
gets=$(reg_count GET '/v2/test/bb/blobs/sha256:[0-9a-f]+')
t_ok "pull again" "$MKIMG" pull -q "$REG/test/bb:v1"
t_eq "pull again fetches no blob" "$(reg_count GET '/v2/test/bb/blobs/sha256:[0-9a-f]+')" "$gets"
t_ok "pull by digest" "$MKIMG" pull -q "$REG/test/bb@$digest"
t_ok "pull re-pushes" "$MKIMG" push -q "$REG/test/bb:v1" "$REG/test/copy:1"
t_eq "to another repository by cross-repository mounts" \
    "$(reg_count POST '/v2/test/copy/blobs/uploads/\?mount=sha256:[0-9a-f]+&from=test/bb')" 2
t_eq "without sending a blob" "$(reg_count PUT '/v2/test/copy/blobs/uploads/[^ ]*')" 0
t_ok "skopeo reads the mounted copy" skopeo inspect --tls-verify=false "docker://$REG/test/copy:1"

# skopeo push -> mkimg pull (uncompressed layers, straight from mkimg's first store)
export MKIMG_ROOT=$T/store
if skopeo copy -q --dest-tls-verify=false "oci:$T/store:busybox:latest" "docker://$REG/sk/bb:1" \
    >"$T/skp" 2>&1; then
    skdigest="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$REG/sk/bb:1" | sha256sum | cut -d' ' -f1)"
    export MKIMG_ROOT=$T/store3
    t_ok "mkimg pulls what skopeo pushed" "$MKIMG" pull "$REG/sk/bb:1"
    t_eq "same manifest digest" "$("$MKIMG" inspect "$REG/sk/bb:1" | jq -r '.[0].Digest')" "$skdigest"
    skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$T/store:busybox:latest" \
        "docker://$REG/sk/bb:v2s2" >"$T/skp" 2>&1
    t_ok "mkimg pulls a Docker v2 manifest" "$MKIMG" pull "$REG/sk/bb:v2s2"
    # index.json must name the manifest's real type (skopeo checks it before reading).
    t_eq "index.json names the Docker manifest type" \
        "$(jq -r --arg r "$REG/sk/bb:v2s2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .mediaType' "$MKIMG_ROOT/index.json")" \
        application/vnd.docker.distribution.manifest.v2+json
    t_ok "mkimg reads the pulled Docker manifest image" "$MKIMG" inspect "$REG/sk/bb:v2s2"
else
    t_fail "skopeo push"; sed 's/^/# /' "$T/skp" | tail -5
fi

# errors
export MKIMG_ROOT=$T/store4
"$MKIMG" pull -q "$REG/test/bb:nope" >/dev/null 2>"$T/err"; rc=$?
t_eq "pull of a missing tag fails" "$rc" 1
t_eq "missing tag message" "$(cat "$T/err")" \
    "mkimg: $REG/test/bb:nope: fetching manifest nope: manifest unknown (HTTP 404)"
"$MKIMG" pull "$REG/Bad/Name" >/dev/null 2>"$T/err"; rc=$?
t_eq "bad reference is refused" "$rc" 1
t_grep "bad reference message" '^mkimg: invalid reference ".*Bad/Name": repository name must be lowercase$' "$T/err"
"$MKIMG" push nosuchimage "$REG/x/y:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "push of an unknown image fails" "$rc" 1
t_eq "unknown image message" "$(cat "$T/err")" "mkimg: nosuchimage: image not known"
t_eq "nothing was stored by failed pulls" "$(find "$MKIMG_ROOT/blobs" -type f 2>/dev/null | wc -l)" 0
"$MKIMG" pull --platform linux >/dev/null 2>"$T/err" "$REG/test/bb:v1"; rc=$?
t_eq "bad --platform is a usage error" "$rc" 2

t_done
