#!/usr/bin/env bash
# --cache-to / --cache-from type=registry (docs/remote-cache.md) on a registry with auth:
# store A pushes its step cache; store B, empty but for the base image, builds from it without
# running a RUN, to the same image ID, downloading only the layers of the final image (the
# registry's access log); an unauthorised or missing cache is one warning and a normal build.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
. "$MKIMG_TOP/tests/lib/remote-cache.sh"
if ! rc_registry cache; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi
ref=$REG/cache/app:main

rc_store a
id_a=$(rc_build "$T/a.log" --creds ci:ci-pw --cache-to "type=registry,ref=$ref,mode=max" \
    --cache-to "type=local,dest=$T/cache,mode=max")
t_eq "A runs every RUN" "$(rc_ran "$T/a.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"
t_eq "A pushed the cache manifest" "$(reg_count PUT '/v2/cache/app/manifests/main')" 1
man=$(jq -r '.manifests[0].digest' "$T/cache/index.json")
mfile=$T/cache/blobs/sha256/${man#sha256:}
t_eq "the registry holds the same artifact as the local export" \
    "$(curl -fsS -u ci:ci-pw -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$REG/v2/cache/app/manifests/main" | sha256sum | cut -d' ' -f1)" "${man#sha256:}"

rc_store b
: >"$REG_LOG.mark"; cp "$REG_LOG" "$T/before.log"
id_b=$(rc_build "$T/b.log" --creds ci:ci-pw --explain-cache --cache-from "type=registry,ref=$ref")
t_eq "B runs no RUN" "$(rc_ran "$T/b.log")" ""
t_eq "B's image ID is A's" "$id_b" "$id_a"
t_grep "--explain-cache names the registry source" "=> cache hit: from \"type=registry,ref=$ref\"" \
    "$T/b.log"
# The blob GETs B made, against the layers the final image has.
diff "$T/before.log" "$REG_LOG" | grep -oE '"GET /v2/cache/app/blobs/sha256:[0-9a-f]{64}' |
    sed 's/.*blobs\///' | sort -u >"$T/got"
"$MKIMG" inspect "$id_b" | jq -r '.[0].RootFS.Layers[1:][]' | sort -u >"$T/need"
t_eq "B downloaded exactly the final image's layers (and the config)" \
    "$(comm -23 "$T/got" "$T/need" | wc -l)" 1
t_eq "... every one of them" "$(comm -13 "$T/got" "$T/need" | wc -l)" 0
jq -r '.layers[].digest' "$mfile" | sort -u | comm -23 - "$T/need" >"$T/build-only"
t_ok "the cache holds layers only the build stage made" test -s "$T/build-only"
t_eq "... and B downloaded none of them" "$(comm -12 "$T/build-only" "$T/got" | wc -l)" 0

rc_store c
echo changed >"$c/late.txt"
rc_build "$T/c.log" --creds ci:ci-pw --cache-from "type=registry,ref=$ref" >/dev/null
t_eq "a changed late file runs only the RUN after it" "$(rc_ran "$T/c.log")" "RAN-final2"
echo late >"$c/late.txt"

rc_store d
id_d=$(rc_build "$T/d.log" --cache-from "type=registry,ref=$ref")
t_grep "no credentials: a warning" "^mkimg: warning: cache source \"type=registry,ref=$ref\": " \
    "$T/d.log"
t_eq "... one line" "$(grep -c '^mkimg: warning' "$T/d.log")" 1
t_eq "... and a normal build" "$(rc_ran "$T/d.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"
t_eq "... of the same image" "$id_d" "$id_a"

rc_store e
rc_build "$T/e.log" --creds ci:ci-pw --cache-from "type=registry,ref=$REG/cache/app:nope" >/dev/null
t_grep "a missing tag: a warning" '^mkimg: warning: cache source ".*app:nope"' "$T/e.log"
t_eq "... and a normal build" "$(rc_ran "$T/e.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"

# type=inline: the final stage's records travel in the pushed image; a bare --cache-from IMAGE
# takes them, and its layers (compressed, as pushed) only when needed.
rc_store f
img=$REG/app/img:1
id_f=$(rc_build "$T/f.log" --creds ci:ci-pw --cache-to type=inline -t "$img" --push)
t_ok "A pushed an image with an inline cache" test -n "$id_f"
curl -fsS -u ci:ci-pw -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/app/img/manifests/1" >"$T/img.json"
t_eq "the pushed manifest carries the records" \
    "$(jq -r '.annotations["dev.mkimg.cache.v1"]' "$T/img.json" | jq '.records | length')" 5
rc_store g
cp "$REG_LOG" "$T/before2.log"
id_g=$(rc_build "$T/g.log" --creds ci:ci-pw --cache-from "$img")
t_eq "B from the image: only the build stage (not in an inline cache) runs" \
    "$(rc_ran "$T/g.log")" "RAN-build1 RAN-build2"
t_eq "... to the same image ID" "$id_g" "$id_f"
diff "$T/before2.log" "$REG_LOG" | grep -oE '"GET /v2/app/img/blobs/sha256:[0-9a-f]{64}' |
    sed 's/.*blobs\///' | sort -u >"$T/got2"
jq -r '.layers[1:][].digest' "$T/img.json" | sort -u >"$T/need2"
t_eq "... downloading the image's layers but the base (and its config)" \
    "$(comm -3 "$T/got2" "$T/need2" | grep -c sha256)" 1
# cache-mounts=true through the registry.
m=$T/m; mkdir -p "$m"
cat >"$m/Dockerfile" <<'DF'
FROM busybox
ARG V=1
RUN --mount=type=cache,target=/root/.cache \
    echo "V=$V found:$(cat /root/.cache/marker 2>/dev/null || echo nothing)"; \
    echo "filled-on-$V" >/root/.cache/marker
DF
rc_store ma
"$MKIMG" build --progress=plain --creds ci:ci-pw \
    --cache-to "type=registry,ref=$REG/cache/mounts:1,cache-mounts=true" "$m" >/dev/null 2>"$T/ma.log"
t_grep "A's RUN fills its cache mount" 'V=1 found:nothing' "$T/ma.log"
rc_store mb
"$MKIMG" build --progress=plain --creds ci:ci-pw --build-arg V=2 \
    --cache-from "type=registry,ref=$REG/cache/mounts:1" "$m" >/dev/null 2>"$T/mb.log"
t_grep "B's RUN finds it filled, through the registry" 'V=2 found:filled-on-1' "$T/mb.log"

# compression=zstd: the layers go up as the store's compressed copies, each named with its
# diff ID; a fresh store finds and unpacks them, runs no RUN, and gets the same image.
rc_store za
rc_build "$T/za.log" --creds ci:ci-pw \
    --cache-to "type=registry,ref=$REG/cache/app:zstd,mode=max,compression=zstd" >/dev/null
zman=$(curl -fsS -u ci:ci-pw -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/cache/app/manifests/zstd")
t_eq "compression=zstd: every cache layer is zstd" \
    "$(jq -r '.layers[].mediaType' <<<"$zman" | sort -u)" \
    "application/vnd.oci.image.layer.v1.tar+zstd"
t_eq "... and names its diff ID" \
    "$(jq '[.layers[].annotations["dev.mkimg.cache.diff-id"] | select(. != null)] | length' \
        <<<"$zman")" "$(jq '.layers | length' <<<"$zman")"
rc_store zb
id_zb=$(rc_build "$T/zb.log" --creds ci:ci-pw --cache-from "type=registry,ref=$REG/cache/app:zstd")
t_eq "compression=zstd: B runs no RUN" "$(rc_ran "$T/zb.log")" ""
t_eq "... to A's image ID" "$id_zb" "$id_a"
"$MKIMG" build --cache-to "type=local,dest=$T/x,compression=gzip" "$c" >/dev/null 2>"$T/z.err"
t_grep "compression= is for a registry cache" 'compression= takes nothing with type=local' \
    "$T/z.err"
"$MKIMG" build --cache-to "type=registry,ref=$REG/x:y,compression=lzma" "$c" >/dev/null 2>"$T/z.err"
t_grep "an unknown compression is a usage error" 'compression= takes gzip, zstd or uncompressed' \
    "$T/z.err"

"$MKIMG" build --cache-to type=inline,mode=max "$c" >/dev/null 2>"$T/i.err"
t_grep "type=inline takes no options" 'type= takes local, registry or inline' "$T/i.err"
t_done
