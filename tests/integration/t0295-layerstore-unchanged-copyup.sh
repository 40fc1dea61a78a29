#!/usr/bin/env bash
# A RUN's layer leaves out what overlay copied up but that did not change (content, mode,
# owner, mtime and xattrs equal to the lower file); real changes, metadata-only ones too,
# stay, with their parent directories. The unpacked image is the same tree either way.
. "$(dirname "$0")/../lib/test-lib.sh"

t_busybox_rootfs "$T/base"
mkdir -p "$T/base/data/deep" "$T/base/opt"
for f in etc/keep etc/change etc/touched etc/chmodded data/deep/file opt/same; do
    echo "content of $f" >"$T/base/$f"
done
touch -d @1600000000 "$T/base/etc/"* "$T/base/data/deep/file" "$T/base/opt/same"
# Like most images, the base has /etc/hostname: a RUN's mount stub for it would change /etc.
: >"$T/base/etc/hostname"
touch -d @0 "$T/base/etc/hostname" "$T/base/etc" "$T/base/data" "$T/base/data/deep" "$T/base/opt"
"$MKIMG" import "$T/base" base:1 >/dev/null

mkdir -p "$T/ctx"
cat >"$T/ctx/Dockerfile" <<'DF'
FROM base:1
RUN cp -p /etc/keep /tmp/k && cp -p /tmp/k /etc/keep && rm /tmp/k && \
    cp -p /data/deep/file /tmp/f && cp -p /tmp/f /data/deep/file && rm /tmp/f && \
    echo changed >/etc/change && touch /etc/touched && chmod 600 /etc/chmodded && \
    cp -p /opt/same /tmp/s && echo other >/opt/same && cp -p /tmp/s /opt/same && rm /tmp/s
DF
t_ok "build" "$MKIMG" build -q -t t:1 -o "$T/local" "$T/ctx"
chain=$("$MKIMG" inspect t:1 | jq -r '.[0].RootFS.Layers[1]')
layer=$("$MKIMG" inspect t:1 | jq -r '.[0].Layers[1]')
tar tvf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" >"$T/list"
tar tf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" >"$T/names"

# The base layer is a single one, so the snapshot of the RUN is named by the chain of both.
snap=$(ls -t "$MKIMG_ROOT/snapshots" | while read -r s; do
    [ -e "$MKIMG_ROOT/snapshots/$s/etc/change" ] && echo "$s" && break; done)
t_ok "overlay did copy the rewritten file up" test -e "$MKIMG_ROOT/snapshots/$snap/etc/keep"
t_ok "and the one in a deeper directory" test -e "$MKIMG_ROOT/snapshots/$snap/data/deep/file"
t_fails "the layer has no entry for the file rewritten with the same bytes and metadata" \
    grep -qx 'etc/keep' "$T/names"
t_fails "nor for the file changed and changed back with its mtime restored" \
    grep -qx 'opt/same' "$T/names"
t_fails "nor for its unchanged directories" grep -qE '^(data/|data/deep/|data/deep/file|opt/)$' "$T/names"
t_grep "a content change is in the layer" '^etc/change$' "$T/names"
t_grep "so is an mtime-only change (touch)" '^etc/touched$' "$T/names"
t_grep "so is a mode-only change (chmod)" '^etc/chmodded$' "$T/names"
t_grep "the parent of the changes is written before them" '^etc/$' <(head -1 "$T/names")
t_grep "with the base's metadata" '^drwxr-xr-x 0/0 +0 1970-01-01 00:00 etc/$' "$T/list"

t_ok "umoci unpack" umoci unpack --image "$MKIMG_ROOT:t:1" "$T/bundle"
r=$T/bundle/rootfs
t_eq "the rewritten file is there, unchanged" "$(cat "$r/etc/keep"; stat -c '%a %Y' "$r/etc/keep")" \
    "content of etc/keep
644 1600000000"
t_eq "the deep one too" "$(cat "$r/data/deep/file")" "content of data/deep/file"
t_eq "the changed one has its new content" "$(cat "$r/etc/change")" "changed"
t_eq "the chmod is there" "$(stat -c %a "$r/etc/chmodded")" "600"
t_ok "umoci's tree is the one mkimg exports from its snapshots" \
    diff -r --no-dereference "$r" "$T/local"
t_eq "with the same modes, owners and mtimes" \
    "$(cd "$r" && find . ! -type l -printf '%p %m %U %G %T@\n' | grep -v '^\. ' | sort)" \
    "$(cd "$T/local" && find . ! -type l -printf '%p %m %U %G %T@\n' | grep -v '^\. ' | sort)"

# Without a change, the step adds an empty layer, as docker does.
cat >"$T/ctx/Dockerfile" <<'DF'
FROM base:1
RUN cp -p /etc/keep /tmp/k && cp -p /tmp/k /etc/keep && rm /tmp/k && touch -d @0 /tmp
DF
t_ok "a RUN that only rewrites a file as it was" "$MKIMG" build -q -t t:2 "$T/ctx"
layer=$("$MKIMG" inspect t:2 | jq -r '.[0].Layers[1]')
t_eq "gives a layer with no entry" "$(tar tf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" | wc -l)" 0
t_eq "fsck is clean" "$("$MKIMG" fsck)" "store is clean"
t_done
