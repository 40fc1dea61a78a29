#!/usr/bin/env bash
# import a busybox rootfs; images, inspect; the store is an OCI layout skopeo and umoci read.
. "$(dirname "$0")/../lib/test-lib.sh"

t_busybox_rootfs "$T/bbroot"
"$MKIMG" import "$T/bbroot" busybox >"$T/id" 2>"$T/err"; rc=$?
t_eq "import a directory" "$rc" 0
id=$(cat "$T/id")
t_grep "import prints the image ID" '^sha256:[0-9a-f]{64}$' "$T/id"

"$MKIMG" images >"$T/images"
t_grep "images header" '^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$' "$T/images"
t_grep "images row" "^busybox +latest +${id:7:12} +.* ago +[0-9.]+ [kMG]?B$" "$T/images"
t_eq "images -q" "$("$MKIMG" images -q)" "${id:7:12}"
t_eq "images -q --no-trunc" "$("$MKIMG" images -q --no-trunc)" "$id"

"$MKIMG" inspect busybox >"$T/inspect"; rc=$?
t_eq "inspect exits 0" "$rc" 0
t_eq "inspect Id" "$(jq -r '.[0].Id' "$T/inspect")" "$id"
t_eq "inspect RepoTags" "$(jq -c '.[0].RepoTags' "$T/inspect")" '["busybox:latest"]'
t_eq "inspect Os" "$(jq -r '.[0].Os' "$T/inspect")" linux
t_eq "inspect one layer" "$(jq -r '.[0].RootFS.Layers | length' "$T/inspect")" 1
t_eq "inspect history" "$(jq -r '.[0].History[0].created_by' "$T/inspect")" "mkimg import $T/bbroot"
t_eq "inspect by ID prefix" "$("$MKIMG" inspect "${id:7:12}" | jq -r '.[0].Id')" "$id"
t_eq "inspect two names" "$("$MKIMG" inspect busybox "$id" | jq length)" 2

# the store is an OCI image layout
t_ok "skopeo inspect" skopeo inspect "oci:$MKIMG_ROOT:busybox:latest"
skopeo inspect --raw "oci:$MKIMG_ROOT:busybox:latest" >"$T/manifest" 2>&1
t_eq "skopeo sees the OCI manifest" "$(jq -r .mediaType "$T/manifest")" \
    application/vnd.oci.image.manifest.v1+json
skopeo inspect --config "oci:$MKIMG_ROOT:busybox:latest" >"$T/config" 2>&1
t_eq "skopeo reads the config" "$(jq -r .os "$T/config")" linux
if umoci unpack --rootless --image "$MKIMG_ROOT:busybox:latest" "$T/bundle" >"$T/umoci" 2>&1; then
    t_pass "umoci unpack"
else
    t_fail "umoci unpack"; sed 's/^/# /' "$T/umoci" | tail -5
fi
t_ok "umoci bundle has bin/busybox" test -x "$T/bundle/rootfs/bin/busybox"
t_ok "umoci bundle has the applet links" test -L "$T/bundle/rootfs/bin/sh"

# a tarball imports to the same layer
tar --numeric-owner -C "$T/bbroot" -czf "$T/bb.tar.gz" .
t_ok "import a gzip tarball" "$MKIMG" import "$T/bb.tar.gz" bbtar:1
t_eq "tarball image has one layer" "$("$MKIMG" inspect bbtar:1 | jq -r '.[0].RootFS.Layers | length')" 1

t_done
