#!/usr/bin/env bash
# Two CI runners exporting to one cache at once (issue 16: "the last complete one wins"):
# runner 1 builds the context as it is, runner 2 with a changed late file; both export to the
# same local directory and to the same registry tag at the same time, three rounds. After each
# round the cache is valid (every blob it names is there and has its digest) and a third store
# builds from it with no warning: nothing runs (runner 1's cache won) or only the RUN after the
# changed file (runner 2's).
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
if ! reg_start conc; then t_fail "registry starts"; t_done; exit 1; fi
. "$MKIMG_TOP/tests/lib/remote-cache.sh"
ref=$REG/cache/conc:main

cp -a "$c" "$T/c2"
echo changed >"$T/c2/late.txt"
rc_store r1
rc_store r2
rc_store b

# The layout at DIR is whole: index.json parses and every blob of every manifest is there
# with the digest it is named by.
layout_whole() {
    local dir=$1 m d f
    jq -e '.manifests | length == 1' "$dir/index.json" >/dev/null || return 1
    for m in $(jq -r '.manifests[].digest' "$dir/index.json"); do
        f=$dir/blobs/sha256/${m#sha256:}
        for d in "$m" $(jq -r '.config.digest, .layers[].digest' "$f"); do
            [ "sha256:$(sha256sum <"$dir/blobs/sha256/${d#sha256:}" | cut -d' ' -f1)" = "$d" ] ||
                return 1
        done
    done
}

for round in 1 2 3; do
    to=(--cache-to "type=local,dest=$T/cache,mode=max" --cache-to "type=registry,ref=$ref,mode=max")
    MKIMG_ROOT=$T/store-r1 "$MKIMG" build -q --no-cache "${to[@]}" "$c" >/dev/null 2>"$T/r1.log" &
    p1=$!
    MKIMG_ROOT=$T/store-r2 "$MKIMG" build -q --no-cache "${to[@]}" "$T/c2" >/dev/null 2>"$T/r2.log" &
    p2=$!
    wait $p1
    s1=$?
    wait $p2
    s2=$?
    t_ok "round $round: both runners succeed" test "$s1$s2" = 00
    t_ok "round $round: the local cache is whole" layout_whole "$T/cache"
    for src in "type=local,src=$T/cache" "type=registry,ref=$ref"; do
        rm -rf "$T/store-b" && rc_store b
        rc_build "$T/b.log" --cache-from "$src" >/dev/null
        ran=$(rc_ran "$T/b.log")
        t_ok "round $round, ${src%%,*}: no warning" \
            bash -c '! grep -q "^mkimg: warning" "$1"' _ "$T/b.log"
        t_ok "round $round, ${src%%,*}: one runner's cache whole (ran: \"$ran\")" \
            test "$ran" = "" -o "$ran" = "RAN-final2"
    done
done
reg_stop
t_done
