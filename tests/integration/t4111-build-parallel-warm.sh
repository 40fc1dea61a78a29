#!/usr/bin/env bash
# --jobs on a rebuild: a stage whose every step is a cache hit is built by the build's own
# process (a probe), not by a helper; only a stage that misses gets one. The image and the
# steps shown are those of a sequential build.
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
t_import_busybox
c=$T/c; mkdir -p "$c"
echo msg >"$c/msg.txt"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS a
RUN echo a >/a
FROM a AS a2
RUN echo a2 >/a2
FROM busybox AS b
ARG B=b
RUN echo $B >/b
FROM busybox AS c
COPY msg.txt /c
FROM busybox
COPY --from=a2 /a /a2 /
COPY --from=b /b /b
COPY --from=c /c /c
RUN cat /a /a2 /b /c >/all
DF
# The build's own pid is the first line's; a helper is a plain fork of it (the RUN sandbox
# and a source root's are clones into new namespaces). Its line may be cut short
# ("<unfinished ...>") when another process's interleaves.
helpers() { # TRACE: how many helper processes the build started
    local main
    main=$(awk 'NR == 1 { print $1 }' "$1")
    grep -cE "^$main +(fork\(|vfork\(|clone\(child_stack=NULL, flags=CLONE_CHILD_CLEARTID\|CLONE_CHILD_SETTID\|SIGCHLD([^|A-Z_]|$))" "$1" || true
}
build_traced() { # NAME ARGS...: builds under strace into $T/NAME.trace, stderr in $T/NAME.log
    local name=$1
    shift
    strace -f -qq -e trace=execve,clone,clone3,fork,vfork -o "$T/$name.trace" \
        "$MKIMG" build --progress=plain "$@" -t warm "$c" >"$T/$name.id" 2>"$T/$name.log"
}
t_ok "a cold build with helpers" build_traced cold
t_ok "... started helpers (the check can fail)" test "$(helpers "$T/cold.trace")" -ge 3
t_ok "its rebuild" build_traced warm
t_eq "... starts no process" "$(grep -cE '^[0-9]+ +(fork|vfork|clone3?)\(' "$T/warm.trace")" 0
t_eq "... gives the same image" "$(cat "$T/warm.id")" "$(cat "$T/cold.id")"
t_eq "... shows each of the 14 steps once, in order" \
    "$(grep -oE '^\[[0-9]+/14\]' "$T/warm.log" | tr -d '[]' | cut -d/ -f1 | paste -sd ' ')" \
    "$(seq 1 14 | paste -sd ' ')"
t_eq "... all 8 layer steps cached" "$(grep -c '^ => CACHED$' "$T/warm.log")" 8
"$MKIMG" build -q -j 1 -t seq "$c" >"$T/seq.id" 2>/dev/null
t_eq "... the image of a sequential build" "$(cat "$T/seq.id")" "$(cat "$T/cold.id")"

t_ok "a rebuild where stage b misses" build_traced one --build-arg B=b2
t_eq "... starts one helper" "$(helpers "$T/one.trace")" 1
t_eq "... which shows b's RUN" "$(grep -cE '^#7 => done' "$T/one.log")" 1
t_eq "... and the image has the new b" "$("$MKIMG" run --rm warm cat /all 2>&1 | paste -sd ' ')" \
    "a a2 b2 msg"
echo msg2 >"$c/msg.txt"
t_ok "a rebuild where stage c misses" build_traced two --build-arg B=b2
t_eq "... starts one helper" "$(helpers "$T/two.trace")" 1
t_eq "... and the image has the new c" "$("$MKIMG" run --rm warm cat /all 2>&1 | paste -sd ' ')" \
    "a a2 b2 msg2"

# A stage that uses one a helper builds is not probed to a wrong result: it gets a helper.
sed -i 's/echo a >\/a/echo A >\/a/' "$c/Dockerfile"
t_ok "a rebuild where a misses (a2 uses a)" build_traced three --build-arg B=b2
t_eq "... starts helpers for a and a2" "$(helpers "$T/three.trace")" 2
t_eq "... and the image has the new a and a2 on it" \
    "$("$MKIMG" run --rm warm cat /all 2>&1 | paste -sd ' ')" "A a2 b2 msg2"
# A probe that reads the file digests before a helper hashes more of them does not make the
# build hash those files again: stage x's COPY is probed (it opens the digest table), y's RUN
# misses, so y's helper hashes the touched tree; the final pass takes the digests it saved.
d=$T/d; mkdir -p "$d/tree"
for i in $(seq 1 40); do echo "$i" >"$d/tree/f$i"; done
echo small >"$d/small"
cat >"$d/Dockerfile" <<'DF'
FROM busybox AS x
COPY small /small
FROM busybox AS y
ARG V=1
RUN echo $V >/v
COPY tree /tree
FROM busybox
COPY --from=x /small /small
COPY --from=y /v /tree /
DF
t_ok "a build of a probed stage and one that copies a tree" "$MKIMG" build -q -t tree "$d"
touch -d '2001-01-01 00:00' "$d"/tree/f*
opens_in_main() { # TRACE: opens of the context's tree/ files (to hash them) by the build
    local main
    main=$(awk 'NR == 1 { print $1 }' "$1")
    grep -cE "^$main +openat2\(.*\"tree/f[0-9]+\"" "$1" || true
}
t_ok "its rebuild with y's RUN changed and the tree touched" \
    strace -f -qq -e trace=openat,openat2 -o "$T/tree.trace" \
    "$MKIMG" build -q --build-arg V=2 -t tree "$d"
t_eq "... hashes the tree in y's helper only" "$(opens_in_main "$T/tree.trace")" 0
t_ok "... (the helper did: the check can fail)" \
    test "$(grep -cE 'openat2\(.*"tree/f[0-9]+"' "$T/tree.trace")" -ge 40
t_eq "... and the image has both" "$("$MKIMG" run --rm tree cat /v /small 2>&1 | paste -sd ' ')" \
    "2 small"
t_ok "fsck is clean" "$MKIMG" fsck
t_eq "no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
