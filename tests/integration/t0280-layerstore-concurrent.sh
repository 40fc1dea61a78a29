#!/usr/bin/env bash
# 8 builds, 2 loads and 2 prunes at once on one store: every build and load succeeds, the
# prunes lose nothing anyone needs, and fsck is clean afterwards.
. "$(dirname "$0")/../lib/test-lib.sh"

t_import_busybox
mkdir -p "$T/ctx"
cat >"$T/ctx/Dockerfile" <<'DF'
FROM busybox
ARG N=0
RUN echo $N >/n && dd if=/dev/urandom of=/big bs=64k count=8 2>/dev/null
RUN echo shared >/shared
DF
"$MKIMG" build -q -t seed "$T/ctx" >/dev/null
"$MKIMG" save --compression gzip -o "$T/seed.tar" seed
"$MKIMG" rmi seed >/dev/null
"$MKIMG" tag busybox doomed

pids=()
for i in 1 2 3 4 5 6 7 8; do
    "$MKIMG" build -q -t "b:$i" --build-arg "N=$i" "$T/ctx" >"$T/build$i.out" 2>&1 &
    pids+=($!)
done
for i in 1 2; do
    "$MKIMG" load -i "$T/seed.tar" >"$T/load$i.out" 2>&1 &
    pids+=($!)
done
"$MKIMG" rmi doomed >/dev/null
for i in 1 2; do
    "$MKIMG" prune >"$T/prune$i.out" 2>&1 &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t_eq "every build, load and prune exits 0" "$failed" 0
for f in "$T"/*.out; do grep -q '^mkimg:' "$f" && sed 's/^/# /' "$f"; done
t_eq "all 8 built images are there" "$("$MKIMG" images | grep -c '^b ')" 8
t_ok "the loaded image is there" "$MKIMG" inspect seed
t_eq "fsck is clean" "$("$MKIMG" fsck 2>&1)" "store is clean"
t_ok "every image still saves (all blobs present)" \
    "$MKIMG" save -o "$T/all.tar" b:1 b:2 b:3 b:4 b:5 b:6 b:7 b:8 seed
t_ok "a rebuild hits the cache for every step" \
    sh -c "'$MKIMG' build -t again --build-arg N=3 '$T/ctx' 2>&1 | grep -c CACHED | grep -qx 2"
t_done
