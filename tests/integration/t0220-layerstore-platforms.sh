#!/usr/bin/env bash
# One name, several platforms: import --platform adds to a name, which then points at an OCI
# image index; images shows each platform, inspect --platform picks one, tag and rmi take the
# whole name, prune keeps every platform's blobs. One platform stays a plain manifest.
. "$(dirname "$0")/../lib/test-lib.sh"

mkdir -p "$T/amd/etc" "$T/arm/etc" "$T/arm2/etc"
echo amd >"$T/amd/etc/which"
echo arm >"$T/arm/etc/which"
echo arm2 >"$T/arm2/etc/which"
host=$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')
other=arm64; [ "$host" = arm64 ] && other=amd64

desc_type() { jq -r --arg r "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .mediaType' "$MKIMG_ROOT/index.json"; }

"$MKIMG" import "$T/amd" app:1 >/dev/null
t_eq "one platform is a plain manifest" "$(desc_type app:1)" application/vnd.oci.image.manifest.v1+json
t_ok "import --platform adds a platform" "$MKIMG" import --platform "linux/$other" "$T/arm" app:1
t_eq "the name now points at an index" "$(desc_type app:1)" application/vnd.oci.image.index.v1+json
skopeo inspect --raw "oci:$MKIMG_ROOT:app:1" >"$T/raw" 2>&1
t_eq "skopeo reads the index: both platforms in order" \
    "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(",")' "$T/raw")" \
    "linux/$host,linux/$other"
t_eq "the index has no stray fields" "$(jq -r 'keys | join(",")' "$T/raw")" manifests,mediaType,schemaVersion

"$MKIMG" images >"$T/images"
t_eq "images shows one row per platform" "$(grep -c '^app ' "$T/images")" 2
t_grep "images shows the platform" "^app +1 .* linux/$other\$" "$T/images"
t_grep "images has a PLATFORM column" 'SIZE +PLATFORM$' "$T/images"

t_eq "inspect gives the host's platform" "$("$MKIMG" inspect app:1 | jq -r '.[0].Architecture')" "$host"
t_eq "inspect --platform picks the other" \
    "$("$MKIMG" inspect --platform "linux/$other" app:1 | jq -r '.[0].Architecture')" "$other"
"$MKIMG" inspect --platform linux/s390x app:1 >/dev/null 2>"$T/err"; rc=$?
t_eq "inspect of a platform the name lacks exits 1" "$rc" 1
t_eq "and says which platforms there are" "$(cat "$T/err")" \
    "mkimg: app:1: no image for platform linux/s390x (the index has linux/$host, linux/$other)"
"$MKIMG" inspect --platform linux/x/y/z app:1 >/dev/null 2>"$T/err"; rc=$?
t_eq "a malformed platform is a usage error" "$rc:$(cat "$T/err")" \
    "2:mkimg: invalid platform \"linux/x/y/z\" (expected OS/ARCH[/VARIANT], e.g. linux/arm64)"

before=$(skopeo inspect --raw "oci:$MKIMG_ROOT:app:1" | jq -r ".manifests[1].digest")
t_ok "import --platform again replaces that platform" "$MKIMG" import --platform "linux/$other" "$T/arm2" app:1
skopeo inspect --raw "oci:$MKIMG_ROOT:app:1" >"$T/raw2"
t_eq "still two platforms, same order" \
    "$(jq -r '[.manifests[].platform.architecture] | join(",")' "$T/raw2")" "$host,$other"
t_fails "the replaced platform's manifest changed" test "$(jq -r '.manifests[1].digest' "$T/raw2")" = "$before"

t_ok "tag copies the whole name" "$MKIMG" tag app:1 app:2
t_eq "the new tag is the same index" "$(desc_type app:2)" application/vnd.oci.image.index.v1+json
t_ok "prune" "$MKIMG" prune
t_ok "fsck after prune: every platform's blobs kept" "$MKIMG" fsck
t_ok "skopeo copies the other platform out of the store" \
    skopeo copy --override-arch "$other" "oci:$MKIMG_ROOT:app:1" "oci:$T/out:x"
t_eq "and it is that platform's image" \
    "$(skopeo inspect --config "oci:$T/out:x" | jq -r .architecture)" "$other"

t_ok "rmi takes the name with all its platforms" "$MKIMG" rmi app:1
t_fails "inspect after rmi fails" "$MKIMG" inspect --platform "linux/$other" app:1
t_eq "the other tag stays" "$(desc_type app:2)" application/vnd.oci.image.index.v1+json

# Adding platforms to one name at the same time loses none of them.
for p in arm64 s390x ppc64le riscv64 386 mips64le; do
    "$MKIMG" import --platform "linux/$p" "$T/arm" race >/dev/null 2>"$T/race-$p" &
done
wait
t_eq "six concurrent import --platform: six platforms" \
    "$("$MKIMG" images | grep -c '^race ')" 6
t_eq "and no errors" "$(cat "$T"/race-* | wc -l)" 0
t_done
