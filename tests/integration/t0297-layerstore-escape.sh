#!/usr/bin/env bash
# Attacks on the store from its inputs (issue 15): `load` of an archive in a compression that
# libarchive decodes by running a program from $PATH (lrzip, lzop, grzip; fake ones here that
# would leave a marker), and a snapshot truncated behind the store's back, which only
# `fsck --deep` can see (and --repair unpacks again).
. "$(dirname "$0")/../lib/test-lib.sh"

# ---- load runs no external decompressor
mkdir -p "$T/bin"
for prog in lrzip lzop grzip; do
    printf '#!/bin/sh\ntouch "%s/marker-%s"\ncat >/dev/null\n' "$T" "$prog" >"$T/bin/$prog"
    chmod +x "$T/bin/$prog"
done
# Just enough of each format's header for libarchive to bid on it.
printf 'LRZI\0\6' >"$T/x.lrzip"
printf '\211LZO\0\r\n\032\n\020\060\040\140\011\100\001\005\003\0\0\001\0\0\201\244' >"$T/x.lzop"
printf 'GRZipII\0\002\004:)' >"$T/x.grzip"
for prog in lrzip lzop grzip; do
    head -c 4096 /dev/zero >>"$T/x.$prog"
    PATH="$T/bin:$PATH" "$MKIMG" load -i "$T/x.$prog" >/dev/null 2>"$T/err"; rc=$?
    t_ok "load of $prog data runs no \"$prog\" from PATH" test ! -e "$T/marker-$prog"
    t_eq "load of $prog data fails with one line naming it" "$rc $(cat "$T/err")" \
        "1 mkimg: $T/x.$prog: loading: the archive is compressed with $prog, which mkimg does not read (tar, gzip or zstd only)"
done
# What load does read still loads (through libarchive's own gzip and zstd decoders).
mkdir -p "$T/root/etc" && echo hi >"$T/root/etc/motd"
"$MKIMG" import "$T/root" app:1 >/dev/null
"$MKIMG" save -o "$T/app.tar" app:1
gzip -c "$T/app.tar" >"$T/app.tar.gz"
zstd -q -c "$T/app.tar" >"$T/app.tar.zst"
t_eq "a gzip-compressed archive loads" "$(PATH="$T/bin:$PATH" "$MKIMG" load -i "$T/app.tar.gz" 2>&1)" \
    "Loaded image: app:1"
t_eq "a zstd-compressed archive loads" "$(PATH="$T/bin:$PATH" "$MKIMG" load -i "$T/app.tar.zst" 2>&1)" \
    "Loaded image: app:1"

# ---- fsck --deep: a truncated file in a snapshot
t_eq "fsck --deep of a whole store" "$("$MKIMG" fsck --deep 2>&1)" "store is clean"
snap=$(dirname "$(ls "$MKIMG_ROOT"/snapshots/*/etc/motd)")
snap=$(dirname "$snap")
chain=sha256:$(basename "$snap")
diff_id=$("$MKIMG" inspect app:1 | jq -r '.[0].RootFS.Layers[0]')
: >"$snap/etc/motd"
t_eq "plain fsck does not look inside snapshots" "$("$MKIMG" fsck 2>&1)" "store is clean"
"$MKIMG" fsck --deep >"$T/out" 2>&1; rc=$?
t_eq "fsck --deep fails on a truncated snapshot file" "$rc" 1
t_eq "and names the image, the layer and the snapshot" "$(head -1 "$T/out")" \
    "image app:1: snapshot of layer 1 ($chain) does not hold the layer (diff ID $diff_id)"
t_eq "fsck --deep --repair" "$("$MKIMG" fsck --deep --repair 2>&1 | tail -1)" "1 problems, 1 repaired"
t_eq "the file is back" "$(cat "$snap/etc/motd")" hi
t_eq "and the store clean" "$("$MKIMG" fsck --deep 2>&1)" "store is clean"

# No false alarm for a layer made with SOURCE_DATE_EPOCH (mtimes clamped in the tar only).
mkdir -p "$T/ctx" && echo new >"$T/ctx/f"
printf 'FROM app:1\nCOPY f /f\n' >"$T/ctx/Dockerfile"
"$MKIMG" build -q --timestamp 1000 -t clamped "$T/ctx" >/dev/null
t_eq "fsck --deep accepts a layer built with --timestamp" "$("$MKIMG" fsck --deep 2>&1)" \
    "store is clean"

# No false alarm for a layer another tool wrote (its tar is not ours byte for byte).
mkdir -p "$T/fl/z" "$T/fl/a" && echo data >"$T/fl/z/f" && echo other >"$T/fl/a/b"
(cd "$T/fl" && tar --no-recursion --owner=0 --group=0 -cf "$T/layer.tar" z z/f a a/b)
python3 - "$T/layer.tar" "$T/foreign.tar" <<'PY'
import hashlib, io, json, sys, tarfile
layer = open(sys.argv[1], "rb").read()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {
    "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
man = json.dumps([{"Config": "c.json", "RepoTags": ["foreign:1"], "Layers": ["l.tar"]}]).encode()
with tarfile.open(sys.argv[2], "w") as t:
    for name, data in (("l.tar", layer), ("c.json", cfg), ("manifest.json", man)):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
"$MKIMG" load -i "$T/foreign.tar" >/dev/null
t_eq "fsck --deep accepts a whole snapshot of a foreign layer" "$("$MKIMG" fsck --deep 2>&1)" \
    "store is clean"
echo truncated >"$(ls "$MKIMG_ROOT"/snapshots/*/z/f)"
"$MKIMG" fsck --deep >"$T/out" 2>&1; rc=$?
t_eq "and finds a changed file in it" "$rc $(grep -c '^image foreign:1: snapshot of layer 1' "$T/out")" "1 1"

# ---- the same as an ordinary user (files of other users inside its id range)
if [ "$(id -u)" != 0 ]; then t_skip "rootless part needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
mkdir -p "$T/u/ctx"
cp "$MKIMG" "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
cp "$T/x.lrzip" "$T/u/"
printf 'FROM busybox\nRUN echo data >/f && chown 1000:1000 /f && mkdir /d && echo x >/d/y\n' \
    >"$T/u/ctx/Dockerfile"
chown -R "$user" "$T/u" "$T/bin"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && PATH='$T/bin':\$PATH MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }
as_user ./mkimg load -i x.lrzip >/dev/null 2>&1
t_ok "rootless: load of lrzip data runs no \"lrzip\"" test ! -e "$T/marker-lrzip"
as_user ./busybox-rootfs.sh rootfs >/dev/null 2>&1
as_user ./mkimg import rootfs busybox:latest >/dev/null 2>&1
t_ok "rootless: build with a RUN that chowns" as_user ./mkimg build -q -t own ctx
t_eq "rootless: fsck --deep of a whole store" "$(as_user ./mkimg fsck --deep 2>&1)" "store is clean"
: >"$(ls "$T"/u/store/snapshots/*/f)"
as_user ./mkimg fsck --deep >"$T/out" 2>&1; rc=$?
t_eq "rootless: fsck --deep finds the truncated file" \
    "$rc $(grep -c '^image own:latest: snapshot of layer 2 ' "$T/out")" "1 1"
t_eq "rootless: fsck --deep --repair" "$(as_user ./mkimg fsck --deep --repair 2>&1 | tail -1)" \
    "1 problems, 1 repaired"
t_eq "rootless: the file is back" "$(cat "$T"/u/store/snapshots/*/f)" data
t_done
