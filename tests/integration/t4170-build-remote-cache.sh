#!/usr/bin/env bash
# --cache-to / --cache-from type=local (docs/remote-cache.md): store A exports its step cache;
# store B, empty but for the base image, builds the same context from it without running a
# RUN, to the same image ID, fetching only the layers it needs; a late change runs only what
# follows it; a broken cache source is one warning and a normal build.
. "$(dirname "$0")/../lib/test-lib.sh"

. "$MKIMG_TOP/tests/lib/remote-cache.sh"

rc_store a
id_a=$(rc_build "$T/a.log" --cache-to "type=local,dest=$T/cache,mode=max" \
    --cache-to "type=local,dest=$T/cache-min")
t_eq "A runs every RUN" "$(rc_ran "$T/a.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"
t_ok "A exported an OCI layout" test -f "$T/cache/oci-layout"
man=$(jq -r '.manifests[0].digest' "$T/cache/index.json")
mfile=$T/cache/blobs/sha256/${man#sha256:}
t_eq "the manifest is a cache artifact" "$(jq -r .artifactType "$mfile")" \
    "application/vnd.mkimg.cache.v1"
cfile=$T/cache/blobs/sha256/$(jq -r '.config.digest' "$mfile" | sed 's/^sha256://')
t_eq "mode=max: a record per step of both stages" "$(jq '.records | length' "$cfile")" 8
mman=$(jq -r '.manifests[0].digest' "$T/cache-min/index.json")
mcfg=$T/cache-min/blobs/sha256/$(jq -r '.config.digest' \
    "$T/cache-min/blobs/sha256/${mman#sha256:}" | sed 's/^sha256://')
t_eq "mode=min (default): the final stage's steps" "$(jq '.records | length' "$mcfg")" 5

# B: the same context, the cache of A.
rc_store b
id_b=$(rc_build "$T/b.log" --explain-cache --cache-from "type=local,src=$T/cache")
t_eq "B runs no RUN" "$(rc_ran "$T/b.log")" ""
t_eq "B's image ID is A's" "$id_b" "$id_a"
t_eq "--explain-cache names the source of each hit" \
    "$(grep -c "=> cache hit: from \"type=local,src=$T/cache\"" "$T/b.log")" 8
# B fetched the final image's layers and no layer only the build stage made.
fetched=0
for d in $(jq -r '.layers[].digest' "$mfile"); do
    [ -f "$MKIMG_ROOT/blobs/sha256/${d#sha256:}" ] && fetched=$((fetched + 1))
done
t_eq "B fetched only the final image's layers" "$fetched" \
    "$("$MKIMG" inspect "$id_b" | jq '.[0].RootFS.Layers | length - 1')"
t_ok "B's image runs" "$MKIMG" run --rm "$id_b" cat /late2 /two

id_b2=$(rc_build "$T/b2.log" --cache-from "type=local,src=$T/cache")
t_eq "B again: local hits, nothing runs" "$(rc_ran "$T/b2.log")" ""
t_eq "B again: the same image" "$id_b2" "$id_a"

# C: a late COPY changed: only the steps after it run.
rc_store c
echo changed >"$c/late.txt"
rc_build "$T/c.log" --explain-cache --cache-from "type=local,src=$T/cache" >/dev/null
t_eq "a changed late file runs only the RUN after it" "$(rc_ran "$T/c.log")" "RAN-final2"
t_grep "--explain-cache: the changed step missed" '=> cache miss:' "$T/c.log"
echo late >"$c/late.txt"

# D: mode=min holds no build-stage step: those run, the rest comes from the cache.
rc_store d
rc_build "$T/d.log" --cache-from "type=local,src=$T/cache-min" >/dev/null
t_eq "a mode=min cache: the build stage runs again" "$(rc_ran "$T/d.log")" "RAN-build1 RAN-build2"

# Broken sources: one warning, then a normal build.
rc_store e
w="mkimg: warning: cache source \"type=local,src=$T/nowhere\": "
id_e=$(rc_build "$T/e.log" --cache-from "type=local,src=$T/nowhere")
t_eq "a missing source: one warning" "$(grep -c '^mkimg: warning: cache source' "$T/e.log")" 1
t_grep "the warning names the source" "^$w" "$T/e.log"
t_eq "a missing source: a normal build" "$(rc_ran "$T/e.log")" \
    "RAN-build1 RAN-build2 RAN-final1 RAN-final2"
t_eq "a missing source: the same image" "$id_e" "$id_a"

rc_store f
cp -a "$T/cache" "$T/bad"
echo '{"schemaVersion":2,"manifests":[' >"$T/bad/index.json"
rc_build "$T/f.log" --cache-from "type=local,src=$T/bad" >/dev/null
t_grep "a corrupt index.json: a warning" '^mkimg: warning: cache source ".*bad"' "$T/f.log"
t_eq "a corrupt index.json: every RUN runs" "$(rc_ran "$T/f.log")" \
    "RAN-build1 RAN-build2 RAN-final1 RAN-final2"

rc_store g
rm -rf "$T/bad" && cp -a "$T/cache" "$T/bad"
printf '{"version":1,"records":[]}' >"$T/bad/blobs/sha256/$(basename "$cfile")"
rc_build "$T/g.log" --cache-from "type=local,src=$T/bad" >/dev/null
t_grep "a config that does not match its digest: a warning" \
    '^mkimg: warning: cache source .*does not match its digest' "$T/g.log"
t_eq "... and every RUN runs" "$(rc_ran "$T/g.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"

rc_store h
rm -rf "$T/bad" && cp -a "$T/cache" "$T/bad"
for d in $(jq -r '.layers[].digest' "$mfile"); do : >"$T/bad/blobs/sha256/${d#sha256:}"; done
rc_build "$T/h.log" --cache-from "type=local,src=$T/bad" >/dev/null
t_grep "damaged layers: a warning" '^mkimg: warning: cache source .*missing or damaged' \
    "$T/h.log"
t_eq "... and every RUN runs" "$(rc_ran "$T/h.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"

# Layers of the right size but other bytes show only when fetched: the build starts over
# without that source (what it built so far is a local hit), to the same image.
rc_store i
rm -rf "$T/bad" && cp -a "$T/cache" "$T/bad"
for d in $(jq -r '.layers[].digest' "$mfile"); do
    printf 'X' | dd of="$T/bad/blobs/sha256/${d#sha256:}" bs=1 seek=1000 conv=notrunc 2>/dev/null
done
id_i=$(rc_build "$T/i.log" --cache-from "type=local,src=$T/bad")
t_grep "a damaged layer: a warning" \
    '^mkimg: warning: cache source ".*bad": .*; building without it$' "$T/i.log"
t_eq "... one line" "$(grep -c '^mkimg: warning' "$T/i.log")" 1
t_eq "... and the same image" "$id_i" "$id_a"
t_eq "... every RUN ran once" "$(rc_ran "$T/i.log")" "RAN-build1 RAN-build2 RAN-final1 RAN-final2"

# cache-mounts=true: what a RUN put in its cache mount on A is there for the RUN on B (which
# runs: its build-arg changed).
m=$T/m; mkdir -p "$m"
cat >"$m/Dockerfile" <<'DF'
FROM busybox
ARG V=1
RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs \
    echo "V=$V found:$(cat /var/cache/pkgs/marker 2>/dev/null || echo nothing)"; \
    echo "filled-on-$V" >/var/cache/pkgs/marker
DF
rc_store ma
"$MKIMG" build --progress=plain --cache-to "type=local,dest=$T/mcache,cache-mounts=true" \
    "$m" >/dev/null 2>"$T/ma.log"
t_grep "A's RUN finds its cache mount empty" 'V=1 found:nothing' "$T/ma.log"
rc_store mb
"$MKIMG" build --progress=plain --build-arg V=2 --cache-from "type=local,src=$T/mcache" \
    "$m" >/dev/null 2>"$T/mb.log"
t_grep "B's RUN finds what A's put in the cache mount" 'V=2 found:filled-on-1' "$T/mb.log"
rc_store mc
"$MKIMG" build --progress=plain --build-arg V=2 --cache-from "type=local,src=$T/cache" \
    "$m" >/dev/null 2>"$T/mc.log"
t_grep "a cache without cache-mounts=true restores none" 'V=2 found:nothing' "$T/mc.log"

# ... also those of RUNs in stages that --jobs builds in helper processes.
j=$T/j; mkdir -p "$j"
cat >"$j/Dockerfile" <<'DF'
FROM busybox AS one
ARG V=1
RUN --mount=type=cache,id=one,target=/c echo "one V=$V found:$(cat /c/m 2>/dev/null || echo nothing)"; echo "one-$V" >/c/m; echo >/o
FROM busybox AS two
ARG V=1
RUN --mount=type=cache,id=two,target=/c echo "two V=$V found:$(cat /c/m 2>/dev/null || echo nothing)"; echo "two-$V" >/c/m; echo >/t
FROM busybox
COPY --from=one /o /o
COPY --from=two /t /t
DF
rc_store ja
"$MKIMG" build --progress=plain --jobs 2 --cache-to "type=local,dest=$T/jcache,cache-mounts=true" \
    "$j" >/dev/null 2>"$T/ja.log"
t_grep "--jobs 2: A's first stage fills its cache mount" 'one V=1 found:nothing' "$T/ja.log"
rc_store jb
"$MKIMG" build --progress=plain --jobs 2 --build-arg V=2 --cache-from "type=local,src=$T/jcache" \
    "$j" >/dev/null 2>"$T/jb.log"
t_grep "... B's finds it filled" 'one V=2 found:one-1' "$T/jb.log"
t_grep "... and so does B's second stage" 'two V=2 found:two-1' "$T/jb.log"

# Usage errors before any work.
"$MKIMG" build --cache-to type=nope,dest=x "$c" >/dev/null 2>"$T/u.err"
t_eq "an unknown type is a usage error" "$?" 2
t_grep "... that names the option" '^mkimg: .*--cache-to "type=nope,dest=x"' "$T/u.err"
"$MKIMG" build --cache-from type=local "$c" >/dev/null 2>"$T/u2.err"
t_grep "type=local without src=" 'needs src=DIR' "$T/u2.err"
t_done
