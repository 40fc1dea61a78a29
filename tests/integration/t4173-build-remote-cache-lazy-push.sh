#!/usr/bin/env bash
# build --push from a registry cache (docs/remote-cache.md "Lazy images"): store B, empty but
# for the base image, builds what store A cached (mode=max) and pushes it to another repository
# of the same registry without downloading one layer blob (the registry's access log): the
# push mounts them from the cache repository. skopeo reads the pushed image (A's config and
# layers); B's store stays a valid OCI layout (the lazy image is not in index.json); a later
# mkimg push mounts again; mkimg save and run fetch the layers first, or fail in one line.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
command -v skopeo >/dev/null || { t_skip "skopeo not available"; t_done; exit 0; }
. "$MKIMG_TOP/tests/lib/remote-cache.sh"
if ! rc_registry lazy; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi
ref=$REG/cache/app:main
img=$REG/app/pushed:1
sk=(--creds ci:ci-pw --tls-verify=false)

rc_store a
id_a=$(rc_build "$T/a.log" --creds ci:ci-pw --cache-to "type=registry,ref=$ref,mode=max")
t_eq "A runs every RUN" "$(rc_ran "$T/a.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"
"$MKIMG" inspect "$id_a" | jq -c '.[0].RootFS.Layers' >"$T/a-layers"

# The blob GETs of the registry log since the copy in $1.
blob_gets() {
    diff "$1" "$REG_LOG" | grep -oE '"GET /v2/[^ ]*/blobs/sha256:[0-9a-f]{64}' |
        sed 's/.*blobs\///' | sort -u
}
cache_config=$(curl -fsS -u ci:ci-pw -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/cache/app/manifests/main" | jq -r .config.digest)

rc_store b
cp "$REG_LOG" "$T/before.log"
id_b=$(rc_build "$T/b.log" --creds ci:ci-pw -t "$img" --push --cache-from "type=registry,ref=$ref")
t_eq "B runs no RUN" "$(rc_ran "$T/b.log")" ""
t_eq "B's image ID is A's" "$id_b" "$id_a"
t_grep "B pushed" "^pushed $img@sha256:" "$T/b.log"
t_eq "B downloaded no layer blob (only the cache's records)" \
    "$(blob_gets "$T/before.log" | grep -vx "$cache_config")" ""
t_ok "... the push mounted the layers from the cache repository" \
    test "$(diff "$T/before.log" "$REG_LOG" | grep -c '"POST /v2/app/pushed/blobs/uploads/?mount=[^ ]*&from=cache/app')" -ge 3

skopeo inspect "${sk[@]}" --raw "docker://$img" >"$T/pushed.json"
t_eq "the pushed manifest names A's config" "$(jq -r .config.digest "$T/pushed.json")" "$id_a"
skopeo inspect "${sk[@]}" --config "docker://$img" | jq -c .rootfs.diff_ids >"$T/b-layers"
t_eq "... and A's layers" "$(cat "$T/b-layers")" "$(cat "$T/a-layers")"
t_ok "skopeo copies the pushed image" \
    skopeo copy -q --src-creds ci:ci-pw --src-tls-verify=false "docker://$img" "oci:$T/copy:x"

# B's store: a valid OCI layout (every blob index.json reaches is there), the lazy image
# outside it.
missing=0
for m in $(jq -r '.manifests[].digest' "$MKIMG_ROOT/index.json"); do
    for d in $m $(jq -r '.config.digest, (.layers // [])[].digest' \
        "$MKIMG_ROOT/blobs/sha256/${m#sha256:}"); do
        [ -e "$MKIMG_ROOT/blobs/sha256/${d#sha256:}" ] || missing=$((missing + 1))
    done
done
t_eq "B's store root is a whole OCI layout" "$missing" 0
t_ok "... skopeo reads it" skopeo inspect "oci:$MKIMG_ROOT:busybox:latest"
t_eq "... the lazy image is not in index.json" \
    "$(jq --arg n "$img" '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n)] | length' \
        "$MKIMG_ROOT/index.json")" 0
t_ok "prune keeps the lazy image" "$MKIMG" prune
t_ok "fsck is happy with it" "$MKIMG" fsck
t_eq "inspect reads the lazy image" "$("$MKIMG" inspect "$img" | jq -r '.[0].Id')" "$id_a"
t_ok "... and history" "$MKIMG" history "$img"

# mkimg push of the lazy image to another repository: mounted again.
cp "$REG_LOG" "$T/before2.log"
"$MKIMG" push --creds ci:ci-pw "$img" "$REG/app/again:1" >/dev/null 2>"$T/push2.err"
t_eq "mkimg push of the lazy image" "$?" 0
t_eq "... downloads no layer blob" "$(blob_gets "$T/before2.log")" ""
t_eq "... to the same manifest" \
    "$(skopeo inspect "${sk[@]}" --raw "docker://$REG/app/again:1" | sha256sum)" \
    "$(sha256sum <"$T/pushed.json")"

# Uses that need the bytes: without credentials, one line naming the cache source.
"$MKIMG" save -o "$T/b.tar" "$img" 2>"$T/save.err"
t_eq "no credentials: save fails" "$?" 1
t_grep "... naming the cache source" "^mkimg: $img: fetching layer sha256:[0-9a-f]* from cache source \"$ref\": " \
    "$T/save.err"
t_eq "... in one line" "$(wc -l <"$T/save.err")" 1
t_ok "... and writes no archive" test ! -e "$T/b.tar"

mkdir -p "$XDG_RUNTIME_DIR/containers"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf ci:ci-pw | base64)" \
    >"$XDG_RUNTIME_DIR/containers/auth.json"
cp "$REG_LOG" "$T/before3.log"
t_ok "mkimg save of the lazy image fetches its layers" "$MKIMG" save -o "$T/b.tar" "$img"
t_ok "... downloading some now" test -n "$(blob_gets "$T/before3.log")"
t_eq "... the archive holds A's image" \
    "$(skopeo inspect --config "oci-archive:$T/b.tar" | jq -c .rootfs.diff_ids)" "$(cat "$T/a-layers")"
t_eq "... now in index.json" \
    "$(jq --arg n "$img" '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n)] | length' \
        "$MKIMG_ROOT/index.json")" 1
t_eq "mkimg run of it works" "$("$MKIMG" run "$img" cat /late2 /two 2>&1)" "late
a
one"
t_ok "fsck is happy" "$MKIMG" fsck

# -o type=registry (type=image,push=true) is the same.
rc_store d
cp "$REG_LOG" "$T/before5.log"
rc_build "$T/d.log" --creds ci:ci-pw -t "$REG/app/d:1" -o type=registry \
    --cache-from "type=registry,ref=$ref" >/dev/null
t_eq "-o type=registry: no layer blob downloaded" \
    "$(blob_gets "$T/before5.log" | grep -vx "$cache_config")" ""
t_eq "... and the image pushed is A's" \
    "$(skopeo inspect "${sk[@]}" --config "docker://$REG/app/d:1" | jq -c .rootfs.diff_ids)" \
    "$(cat "$T/a-layers")"
mkdir -p "$T/from"
printf 'FROM %s\nRUN cat /late2 /two >/both\n' "$REG/app/d:1" >"$T/from/Dockerfile"
id_from=$("$MKIMG" build -q --pull=never "$T/from" 2>"$T/from.err")
t_eq "FROM a lazy image fetches its layers" "$("$MKIMG" run "$id_from" cat /both 2>&1)" "late
a
one"

# rmi of a lazy image: its name goes, prune then takes its blobs.
rc_store c
rc_build "$T/c.log" --creds ci:ci-pw -t "$REG/app/c:1" --push --cache-from "type=registry,ref=$ref" \
    >/dev/null
t_ok "another lazy image" test -n "$(ls "$MKIMG_ROOT/lazy/refs")"
# Pushed to another registry: no mount there, the layers go through the store.
reg1=$REG log1=$REG_LOG
reg_start other || t_fail "a second registry starts"
reg2=$REG REG=$reg1 REG_LOG=$log1
cp "$REG_LOG" "$T/before4.log"
"$MKIMG" push --creds ci:ci-pw "$REG/app/c:1" "$reg2/other/c:1" >/dev/null 2>"$T/push4.err"
t_eq "mkimg push of a lazy image to another registry" "$?" 0
t_ok "... fetches its layers from the cache" test -n "$(blob_gets "$T/before4.log")"
t_eq "... and the image there is A's" \
    "$(skopeo inspect --tls-verify=false --config "docker://$reg2/other/c:1" | jq -c .rootfs.diff_ids)" \
    "$(cat "$T/a-layers")"
t_eq "rmi of it" "$("$MKIMG" rmi "$REG/app/c:1")" "Untagged: $REG/app/c:1"
"$MKIMG" prune >/dev/null
t_ok "... and prune drops its manifest" test ! -e "$MKIMG_ROOT/blobs/sha256/$(jq -r .config.digest "$T/pushed.json" | cut -d: -f2)"
t_eq "... and its lazy layer records" "$(ls -A "$MKIMG_ROOT/lazy/layers")" ""
t_done
