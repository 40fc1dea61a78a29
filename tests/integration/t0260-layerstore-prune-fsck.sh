#!/usr/bin/env bash
# prune (what goes, what stays, waiting for other processes), df, fsck and fsck --repair.
. "$(dirname "$0")/../lib/test-lib.sh"

blobs() { ls "$MKIMG_ROOT/blobs/sha256" | wc -l; }
snaps() { ls "$MKIMG_ROOT/snapshots" | wc -l; }

t_import_busybox
mkdir -p "$T/r2/etc" && echo two >"$T/r2/etc/two"
"$MKIMG" import "$T/r2" two:1 >/dev/null
t_eq "fresh store is clean" "$("$MKIMG" fsck)" "store is clean"
t_eq "prune of a store where everything is used removes nothing" "$("$MKIMG" prune)" \
    "removed 0 blobs, 0 snapshots, 0 cache entries; freed 0.0 MB"
t_grep "df lists images" '^images +2 ' <("$MKIMG" df)

"$MKIMG" save --compression gzip busybox >/dev/null
t_grep "df counts the compressed copy" '^compressed copies +1 ' <("$MKIMG" df)
t_eq "prune keeps the compressed copy of a used layer" "$("$MKIMG" prune)" \
    "removed 0 blobs, 0 snapshots, 0 cache entries; freed 0.0 MB"

"$MKIMG" rmi two:1 >/dev/null
t_grep "df shows what is reclaimable" '^unreferenced blobs +3 ' <("$MKIMG" df)
before=$(blobs)
t_grep "prune of a removed image" '^removed 3 blobs, 1 snapshots, 0 cache entries; freed ' \
    <("$MKIMG" prune)
t_eq "its three blobs are gone" "$(blobs)" $((before - 3))
t_eq "one snapshot is left" "$(snaps)" 1
t_ok "the other image still saves" "$MKIMG" save -o "$T/bb.tar" busybox
t_eq "still clean" "$("$MKIMG" fsck)" "store is clean"
t_grep "prune --all drops the cache and the compressed copy" \
    '^removed 1 blobs, 0 snapshots, 1 cache entries; ' <("$MKIMG" prune --all)
t_eq "clean after prune --all" "$("$MKIMG" fsck)" "store is clean"

# Prune waits for other mkimg processes: a load that has the store open but has not tagged
# its image yet must not lose its blobs.
"$MKIMG" rmi busybox >/dev/null
mkfifo "$T/fifo"
"$MKIMG" load -i "$T/fifo" >"$T/load.out" 2>&1 &
loadpid=$!
exec 7>"$T/fifo"
head -c 20000 "$T/bb.tar" >&7
sleep 0.5
"$MKIMG" prune >"$T/prune.out" 2>&1 &
prunepid=$!
sleep 1
t_eq "prune waits while a load is running" "$(kill -0 $prunepid 2>/dev/null && echo waiting)" waiting
tail -c +20001 "$T/bb.tar" >&7
exec 7>&-
wait $loadpid
t_eq "the load finished" "$(cat "$T/load.out")" "Loaded image: busybox:latest"
wait $prunepid
t_ok "the loaded image is whole after the prune" "$MKIMG" save -o "$T/bb2.tar" busybox
t_eq "clean" "$("$MKIMG" fsck)" "store is clean"

# fsck finds a corrupted blob, a snapshot that is not a directory, a missing blob; --repair
# fixes them. A missing snapshot is derived data (unpacked from its blob when needed), no
# problem.
layer=$("$MKIMG" inspect busybox | jq -r '.[0].Layers[0]')
chain=$("$MKIMG" inspect busybox | jq -r '.[0].RootFS.Layers[0]')
mv "$MKIMG_ROOT/snapshots/${chain#sha256:}" "$T/saved-snap"
t_eq "a missing snapshot is no problem" "$("$MKIMG" fsck 2>&1)" "store is clean"
echo junk >"$MKIMG_ROOT/snapshots/${chain#sha256:}"
"$MKIMG" fsck >"$T/out"; rc=$?
t_eq "fsck exits 1 on a snapshot that is not a directory" "$rc" 1
t_grep "and names it" "^image busybox:latest: snapshot of layer 1 \\($chain\\) is not a directory$" "$T/out"
t_grep "and counts" '^1 problems \("mkimg fsck --repair" fixes them\)$' "$T/out"
t_grep "--repair unpacks it again" '^1 problems, 1 repaired$' <("$MKIMG" fsck --repair)
t_eq "same tree as before" "$(diff -r --no-dereference "$T/saved-snap" "$MKIMG_ROOT/snapshots/${chain#sha256:}" && echo same)" same

"$MKIMG" import "$T/r2" two:1 >/dev/null
two_layer=$("$MKIMG" inspect two:1 | jq -r '.[0].Layers[0]')
echo junk >>"$MKIMG_ROOT/blobs/sha256/${two_layer#sha256:}"
"$MKIMG" fsck >"$T/out"; rc=$?
t_eq "fsck exits 1 on a corrupt blob" "$rc" 1
t_grep "the blob is named" "^blob $two_layer: content is sha256:[0-9a-f]{64}$" "$T/out"
t_grep "so is the image it breaks" "^image two:1: layer 1 \\($two_layer\\) is missing or corrupt$" "$T/out"
"$MKIMG" prune >/dev/null 2>&1
t_ok "prune leaves a corrupt store alone otherwise" test -e "$MKIMG_ROOT/blobs/sha256/${two_layer#sha256:}"
t_grep "--repair drops the blob and the image" '^2 problems, 2 repaired$' <("$MKIMG" fsck --repair)
t_fails "the broken image is gone" "$MKIMG" inspect two:1
t_ok "the good one is not" "$MKIMG" inspect busybox
t_eq "clean after repair" "$("$MKIMG" fsck)" "store is clean"
rm "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}"
t_grep "a missing layer blob" "^image busybox:latest: layer 1 \\($layer\\) is missing or corrupt$" <("$MKIMG" fsck)
manifest=$("$MKIMG" inspect busybox | jq -r '.[0].Digest')
rm "$MKIMG_ROOT/blobs/sha256/${manifest#sha256:}"
"$MKIMG" prune >/dev/null 2>"$T/err"; rc=$?
t_eq "prune refuses when an image's manifest is gone" "$rc" 1
t_eq "and says why" "$(cat "$T/err")" \
    "mkimg: nothing pruned (\"mkimg fsck --repair\" drops broken images): image busybox:latest: blob $manifest not found"
"$MKIMG" fsck --repair >"$T/out"
t_grep "fsck --repair drops the image" "^1 problems, 1 repaired$" "$T/out"
t_eq "clean again" "$("$MKIMG" fsck)" "store is clean"
"$MKIMG" prune >"$T/out"
t_grep "and prune goes on" "^removed 3 blobs, 2 snapshots, " "$T/out"
t_eq "an empty store is left" "$(blobs) $(snaps)" "0 0"
"$MKIMG" prune --bogus >/dev/null 2>&1; rc=$?
t_eq "prune with a bad option is a usage error" "$rc" 2
"$MKIMG" fsck --bogus >/dev/null 2>&1; rc=$?
t_eq "fsck with a bad option is a usage error" "$rc" 2
t_done
