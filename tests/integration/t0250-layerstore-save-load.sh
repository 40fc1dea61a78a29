#!/usr/bin/env bash
# save to oci-archive / docker-archive / oci-dir (read back by skopeo and umoci), load of our
# own and of skopeo-written archives, compression, and the errors.
. "$(dirname "$0")/../lib/test-lib.sh"

t_import_busybox
id=$("$MKIMG" inspect busybox | jq -r '.[0].Id')
"$MKIMG" tag busybox app:1 127.0.0.1:5000/lib/app:v2

t_ok "save an oci-archive" "$MKIMG" save -o "$T/a.tar" busybox
t_eq "skopeo reads the oci-archive's config" \
    "$(skopeo inspect --config "oci-archive:$T/a.tar" 2>&1 | jq -r .rootfs.diff_ids[0] | cut -c1-7)" sha256:
t_ok "skopeo copies from the oci-archive by name" \
    skopeo copy "oci-archive:$T/a.tar:busybox:latest" "oci:$T/sk-oci:x"
t_eq "an archive names what it was asked for" \
    "$(tar -xOf "$T/a.tar" index.json | jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"]')" \
    busybox:latest
t_eq "by ID, every tag is recorded" \
    "$("$MKIMG" save "$id" | tar -xO index.json | jq -r '.manifests | length')" 3
"$MKIMG" save -o "$T/a2.tar" busybox
t_eq "the same image saves to the same bytes" "$(cmp "$T/a.tar" "$T/a2.tar" && echo same)" same

t_ok "save a docker-archive" "$MKIMG" save --format docker-archive -o "$T/d.tar" app:1 busybox
t_eq "skopeo reads the docker-archive (image ID kept)" \
    "$(skopeo inspect --raw "docker-archive:$T/d.tar:app:1" | jq -r .config.digest)" "$id"
t_eq "docker-archive manifest.json lists both images" \
    "$(tar -xOf "$T/d.tar" manifest.json | jq -c '[.[].RepoTags[]]')" '["app:1","busybox:latest"]'

t_ok "save gzip-compressed" "$MKIMG" save --compression gzip -o "$T/g.tar" busybox
mdig=$(tar -xOf "$T/g.tar" index.json | jq -r '.manifests[0].digest')
t_eq "gzip layers have the gzip media type" \
    "$(tar -xOf "$T/g.tar" "blobs/sha256/${mdig#sha256:}" | jq -r '.layers[0].mediaType')" \
    application/vnd.oci.image.layer.v1.tar+gzip
t_ok "skopeo copies the gzip archive (verifying every digest)" \
    skopeo copy "oci-archive:$T/g.tar" "oci:$T/sk-gz:x"
t_ok "save zstd to an oci-dir" "$MKIMG" save --format oci-dir --compression zstd \
    --compression-level 5 -o "$T/zdir" busybox
t_ok "skopeo copies the zstd layout" skopeo copy "oci:$T/zdir:busybox:latest" "oci:$T/sk-z:x"
t_eq "a second compressed save reuses the cached copy" \
    "$("$MKIMG" save --compression gzip busybox | tar -xO index.json | jq -r '.manifests[0].digest')" \
    "$mdig"

t_ok "save an oci-dir" "$MKIMG" save --format oci-dir -o "$T/dir" busybox
if umoci unpack --rootless --image "$T/dir:busybox:latest" "$T/bundle" >/dev/null 2>&1; then
    snap=$MKIMG_ROOT/snapshots/$("$MKIMG" inspect busybox | jq -r '.[0].RootFS.Layers[0]' | cut -c8-)
    t_eq "umoci unpack gives the snapshot's tree" \
        "$(diff -r --no-dereference "$T/bundle/rootfs" "$snap" >/dev/null && echo same)" same
else
    t_fail "umoci unpack of the oci-dir"
fi

"$MKIMG" rmi app:1 127.0.0.1:5000/lib/app:v2 busybox >/dev/null
t_eq "load of an oci-archive says what it loaded" "$("$MKIMG" load -i "$T/a.tar")" \
    "Loaded image: busybox:latest"
t_eq "the loaded image has its ID" "$("$MKIMG" inspect busybox | jq -r '.[0].Id')" "$id"
t_eq "load of a docker-archive from stdin" "$("$MKIMG" load <"$T/d.tar")" \
    "Loaded image: app:1
Loaded image: busybox:latest"
t_eq "load of a gzip-layer archive keeps the ID" \
    "$("$MKIMG" rmi busybox >/dev/null; "$MKIMG" load -q -i "$T/g.tar"; "$MKIMG" inspect busybox | jq -r '.[0].Id')" "$id"
t_ok "load of a gzipped archive" sh -c "gzip -c '$T/a.tar' | '$MKIMG' load"

skopeo copy "oci-archive:$T/a.tar" "docker-archive:$T/sk-d.tar:skopeo/one:v1" >/dev/null 2>&1
skopeo copy --dest-compress-format zstd "oci-archive:$T/a.tar" "oci-archive:$T/sk-o.tar:skopeo/two:v2" >/dev/null 2>&1
t_eq "load of a skopeo docker-archive" "$("$MKIMG" load -i "$T/sk-d.tar" 2>&1)" \
    "Loaded image: docker.io/skopeo/one:v1"
t_eq "load of a skopeo zstd oci-archive" "$("$MKIMG" load -i "$T/sk-o.tar" 2>&1)" \
    "Loaded image: skopeo/two:v2"
t_eq "both have the original ID" \
    "$("$MKIMG" inspect docker.io/skopeo/one:v1 skopeo/two:v2 | jq -r '.[].Id' | sort -u)" "$id"
t_eq "fsck after all that" "$("$MKIMG" fsck)" "store is clean"

# A layer whose content does not match the config's diff_id is refused.
mkdir -p "$T/bad" && tar -xf "$T/a.tar" -C "$T/bad"
cfg=$(jq -r '.config.digest' "$T/bad/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/bad/index.json" | cut -c8-)")
mkdir -p "$T/other/etc" && echo evil >"$T/other/etc/evil"
tar -cf "$T/evil.tar" -C "$T/other" etc
edig=$(sha256sum "$T/evil.tar" | cut -d' ' -f1)
cp "$T/evil.tar" "$T/bad/blobs/sha256/$edig"
jq -c --arg d "sha256:$edig" --argjson s "$(stat -c %s "$T/evil.tar")" \
    '.layers[0].digest = $d | .layers[0].size = $s' \
    "$T/bad/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/bad/index.json" | cut -c8-)" >"$T/m.json"
mdig2=$(sha256sum "$T/m.json" | cut -d' ' -f1)
cp "$T/m.json" "$T/bad/blobs/sha256/$mdig2"
jq -c --arg d "sha256:$mdig2" --argjson s "$(stat -c %s "$T/m.json")" \
    '.manifests[0].digest = $d | .manifests[0].size = $s | .manifests[0].annotations["io.containerd.image.name"] = "evil:1"' \
    "$T/bad/index.json" >"$T/bad/index2.json" && mv "$T/bad/index2.json" "$T/bad/index.json"
tar -cf "$T/bad.tar" -C "$T/bad" .
"$MKIMG" load -i "$T/bad.tar" >/dev/null 2>"$T/err"; rc=$?
t_eq "a layer that is not the config's diff_id fails" "$rc" 1
t_grep "and says so" "^mkimg: $T/bad.tar: loading: layer \"blobs/sha256/$edig\" unpacks to sha256:$edig, but the config says sha256:" "$T/err"
t_fails "nothing is tagged" "$MKIMG" inspect evil:1
: "$cfg"

echo "not a tar" >"$T/junk"
"$MKIMG" load -i "$T/junk" >/dev/null 2>"$T/err"; rc=$?
t_eq "load of junk exits 1" "$rc" 1
t_grep "load of junk says it is no archive" "^mkimg: $T/junk: loading: reading the archive: " "$T/err"
tar -cf "$T/empty.tar" -C "$T/other" etc
"$MKIMG" load -i "$T/empty.tar" >/dev/null 2>"$T/err"
t_eq "a tar without index.json or manifest.json" "$(cat "$T/err")" \
    "mkimg: $T/empty.tar: loading: not an OCI or Docker archive (no index.json or manifest.json)"
"$MKIMG" load -i "$T/nonexistent" >/dev/null 2>"$T/err"
t_eq "load of a missing file" "$(cat "$T/err")" \
    "mkimg: opening \"$T/nonexistent\": No such file or directory"
"$MKIMG" save -o "$T/x.tar" nosuch >/dev/null 2>"$T/err"; rc=$?
t_eq "save of a missing image exits 1" "$rc" 1
t_eq "save of a missing image says so" "$(cat "$T/err")" "mkimg: nosuch: image not known"
t_eq "and leaves no file behind" "$(ls "$T" | grep -c '^x\.tar')" 0
"$MKIMG" save --format zip busybox >/dev/null 2>&1; rc=$?
t_eq "an unknown format is a usage error" "$rc" 2
"$MKIMG" save --compression lz4 busybox >/dev/null 2>&1; rc=$?
t_eq "an unknown compression is a usage error" "$rc" 2
"$MKIMG" save --format oci-dir busybox >/dev/null 2>&1; rc=$?
t_eq "oci-dir without -o is a usage error" "$rc" 2
"$MKIMG" save >/dev/null 2>&1; rc=$?
t_eq "save without an image is a usage error" "$rc" 2
t_eq "fsck is still clean" "$("$MKIMG" fsck)" "store is clean"
t_done
