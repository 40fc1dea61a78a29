#!/usr/bin/env bash
# The store owns its caches: RUN --mount=type=cache directories are store objects that df
# counts, prune --all and prune --keep-storage (least recently used first) remove and fsck
# checks; cache records are typed (fsck finds a damaged one); an earlier mkimg's untyped
# cache is no problem for fsck and goes at the next prune.
. "$(dirname "$0")/../lib/test-lib.sh"

t_import_busybox
df_mounts() { "$MKIMG" df | awk '/^cache mounts /{print $3}'; }
# Builds a Dockerfile given on stdin from an empty context, tagged $1, extra options after.
build() {
    local tag=$1; shift
    mkdir -p "$T/ctx-$tag"
    cat >"$T/ctx-$tag/Dockerfile"
    "$MKIMG" build -q -t "$tag" "$@" "$T/ctx-$tag" >/dev/null 2>"$T/err" || cat "$T/err" >&2
}
# What the cache mount id $1 holds now: "present" when a build finds its file there.
probe() {
    build "probe-$1" --no-cache -o "type=local,dest=$T/probe-$1" <<DF
FROM busybox
RUN --mount=type=cache,id=$1,target=/c if test -f /c/f; then echo present; else echo absent; fi >/result
DF
    cat "$T/probe-$1/result"
}

t_eq "an empty store has no cache mounts" "$(df_mounts)" 0
build one <<'DF'
FROM busybox
RUN --mount=type=cache,id=one,target=/c echo hello >/c/f
DF
t_eq "a build's cache mount shows in df" "$(df_mounts)" 1
t_grep "with its size" '^cache mounts +1 +[0-9.]+ [kM]?B ' <("$MKIMG" df)
t_ok "it lives under the store's cache" test -d "$MKIMG_ROOT/cache/mounts"
t_fails "and nowhere else" test -e "$MKIMG_ROOT/mounts"
t_eq "the store with a cache mount is clean" "$("$MKIMG" fsck)" "store is clean"
t_eq "prune without --all keeps cache mounts" "$("$MKIMG" prune)" \
    "removed 0 blobs, 0 snapshots, 0 cache entries; freed 0.0 MB"
t_eq "the mount still holds its file" "$(probe one)" present
"$MKIMG" prune --all >"$T/out"
t_grep "prune --all removes the cache mount" '^removed [0-9]+ blobs, [0-9]+ snapshots, [0-9]+ cache entries, 1 cache mounts; ' "$T/out"
t_eq "df counts none after prune --all" "$(df_mounts)" 0
t_eq "a build finds the cache empty again" "$(probe one)" absent

# LRU: three 2 MB cache mounts used in the order a, b, c, then a again: b is the least
# recently used and is the one --keep-storage takes when 1 MB must go.
"$MKIMG" prune --all >/dev/null
for id in a b c a; do
    build "fill-$id" --no-cache <<DF
FROM busybox
RUN --mount=type=cache,id=$id,target=/c head -c 2000000 /dev/urandom >/c/f
DF
done
t_eq "three cache mounts" "$(df_mounts)" 3
s0=$("$MKIMG" prune --keep-storage 1TB | sed -n 's/^store size .* (\([0-9]*\) bytes)$/\1/p')
"$MKIMG" prune --keep-storage "$((s0 - 1000000))" >"$T/out"
t_grep "--keep-storage removes one cache mount" ', 1 cache mounts; ' "$T/out"
got=$(sed -n 's/^store size .* (\([0-9]*\) bytes)$/\1/p' "$T/out")
t_ok "the store is at or under the limit" test "$got" -le "$((s0 - 1000000))"
t_eq "two are left" "$(df_mounts)" 2
t_eq "the least recently used (b) is gone" "$(probe b)" absent
t_eq "a, used last, stays" "$(probe a)" present
t_eq "c stays" "$(probe c)" present
t_eq "clean after the LRU prune" "$("$MKIMG" fsck)" "store is clean"

# fsck checks every cache record and cache mount; --repair drops the broken ones.
build steps <<'DF'
FROM busybox
RUN echo x >/x
DF
layer=$("$MKIMG" inspect steps | jq -r '.[0].RootFS.Layers[1]')
rec=$(grep -l "\"diffID\":\"$layer\"" "$MKIMG_ROOT"/cache/steps/* | xargs -n1 basename)
t_ok "the step left a typed record naming its layer" test -n "$rec"
printf 'garbage' >"$MKIMG_ROOT/cache/steps/$rec"
"$MKIMG" fsck >"$T/out"; rc=$?
t_eq "fsck exits 1 on a damaged step record" "$rc" 1
t_grep "and names it" "^cache record cache/steps/$rec: " "$T/out"
mnt=$(ls "$MKIMG_ROOT/cache/mounts" | head -1)
rm -rf "$MKIMG_ROOT/cache/mounts/$mnt/data" && echo junk >"$MKIMG_ROOT/cache/mounts/$mnt/data"
echo junk >"$MKIMG_ROOT/cache/steps/not-a-key"
"$MKIMG" fsck >"$T/out"
t_grep "a damaged cache mount is named" "^cache mount $mnt \"data\" is not a directory$" "$T/out"
t_grep "so is a stray file" '^stray entry "cache/steps/not-a-key"$' "$T/out"
t_grep "--repair drops all three" '^3 problems, 3 repaired$' <("$MKIMG" fsck --repair)
t_eq "clean after repair" "$("$MKIMG" fsck)" "store is clean"
t_fails "the damaged mount is gone" test -e "$MKIMG_ROOT/cache/mounts/$mnt"
"$MKIMG" build -t steps "$T/ctx-steps" >"$T/out" 2>&1
t_fails "a dropped step record is a miss, not an error" grep -q '=> CACHED' "$T/out"
"$MKIMG" build -t steps "$T/ctx-steps" >"$T/out" 2>&1
t_grep "and the next build hits again" '=> CACHED' "$T/out"

# A store an earlier mkimg wrote: untyped records right under cache/, cache mounts under
# mounts/cache/. fsck leaves them alone; prune removes them.
mounts_before=$(df_mounts)
printf 'layer %s %s\n' "$layer" "$layer" >"$MKIMG_ROOT/cache/$(printf old | sha256sum | cut -d' ' -f1)"
mkdir -p "$MKIMG_ROOT/mounts/cache/$(printf m | sha256sum | cut -d' ' -f1)/sub"
head -c 100000 /dev/urandom >"$MKIMG_ROOT/mounts/cache/$(printf m | sha256sum | cut -d' ' -f1)/sub/f"
touch "$MKIMG_ROOT/mounts/cache/$(printf m | sha256sum | cut -d' ' -f1).lock"
t_eq "fsck: an earlier mkimg's cache is no problem" "$("$MKIMG" fsck)" "store is clean"
t_eq "df counts its cache mount" "$(df_mounts)" "$((mounts_before + 1))"
"$MKIMG" prune >"$T/out"
t_grep "prune removes the old mount" ', 1 cache mounts; ' "$T/out"
t_fails "the old mounts tree is gone" test -e "$MKIMG_ROOT/mounts"
t_fails "so is the old record" test -e "$MKIMG_ROOT/cache/$(printf old | sha256sum | cut -d' ' -f1)"
t_eq "the new-format cache mounts stay" "$(df_mounts)" "$mounts_before"
"$MKIMG" build -t steps "$T/ctx-steps" >"$T/out" 2>&1
t_grep "the build cache still hits" '=> CACHED' "$T/out"
t_eq "clean at the end" "$("$MKIMG" fsck)" "store is clean"

# Temp files are store objects too: df shows what a running build holds, none after it.
mkdir -p "$T/ctx-sleep"
printf 'FROM busybox\nRUN sleep 3; echo %s >/s\n' "$$" >"$T/ctx-sleep/Dockerfile"
"$MKIMG" build -q -t sleeper "$T/ctx-sleep" >/dev/null 2>&1 &
bpid=$!
for _ in $(seq 100); do [ -n "$(ls -A "$MKIMG_ROOT/tmp")" ] && break; sleep 0.1; done
t_grep "df counts a running build's temp files" '^temp files +[1-9]' <("$MKIMG" df)
wait $bpid
t_grep "and none once it is done" '^temp files +0 ' <("$MKIMG" df)
t_done
