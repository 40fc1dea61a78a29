#!/usr/bin/env bash
# RUN --mount=type=bind,from=STAGE|IMAGE (source= inside it), rw binds (writes discarded, the
# source untouched), rw binds of the context, .dockerignore'd files invisible in context
# binds, type=cache,from=STAGE (seeded from the stage, persists), and the cache key: a change
# in the from-stage or in a bound context file re-runs the step, an ignored file does not.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c/sub/private" "$c/sub/pub"
echo secret >"$c/sub/private/x"; echo pub >"$c/sub/pub/y"; echo top >"$c/sub/z"
printf 'sub/private\nsub/*.log\n!sub/keep.log\n' >"$c/.dockerignore"
echo dropped >"$c/sub/drop.log"; echo kept >"$c/sub/keep.log"
chmod 750 "$c/sub"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS builder
ARG V=v1
RUN mkdir -p /out/d && echo built > /out/d/file && echo $V > /out/ver
FROM busybox AS unrelated
RUN echo never used
FROM busybox
RUN --mount=type=bind,from=builder,source=/out,target=/mnt/b cat /mnt/b/d/file /mnt/b/ver > /got && ! touch /mnt/b/x 2>/dev/null && echo ro > /ro
RUN --mount=type=bind,from=busybox,source=bin,target=/mnt/img test -x /mnt/img/busybox && echo yes > /img
RUN --mount=type=bind,from=builder,target=/mnt/b,rw echo w > /mnt/b/out/ver && cat /mnt/b/out/ver > /got2 && touch /mnt/b/new
RUN --mount=type=bind,from=builder,target=/mnt/b cat /mnt/b/out/ver > /got3 && test ! -e /mnt/b/new && echo gone > /got4
RUN --mount=type=bind,target=/ctx,rw find /ctx | sort > /ls && echo changed > /ctx/sub/z && touch /ctx/newfile && stat -c %a /ctx/sub > /mode
RUN --mount=type=bind,source=sub,target=/ctx find /ctx | sort > /ls2 && cat /ctx/pub/y > /y
RUN --mount=type=cache,from=builder,source=/out,target=/c,id=cc cat /c/ver > /cacheseed && echo more >> /c/more && cat /c/more > /cachemore
DF
t_ok "build with from= and rw mounts" "$MKIMG" build -t m "$c"
r=$T/u/rootfs
umoci unpack --image "$MKIMG_ROOT:m:latest" "$T/u" >/dev/null 2>&1
t_eq "bind from a stage, source= inside it" "$(cat "$r/got")" "built
v1"
t_eq "bind from a stage is read-only" "$(cat "$r/ro")" ro
t_eq "bind from an image" "$(cat "$r/img")" yes
t_eq "rw bind is writable" "$(cat "$r/got2")" w
t_eq "rw writes are discarded after the step" "$(cat "$r/got3") $(cat "$r/got4")" "v1 gone"
t_eq "context bind shows what COPY would see" "$(cat "$r/ls")" "/ctx
/ctx/.dockerignore
/ctx/Dockerfile
/ctx/sub
/ctx/sub/keep.log
/ctx/sub/pub
/ctx/sub/pub/y
/ctx/sub/z"
t_eq "the hiding layer keeps the directory's mode" "$(cat "$r/mode")" 750
t_eq "context bind of a subdirectory" "$(cat "$r/ls2")" "/ctx
/ctx/keep.log
/ctx/pub
/ctx/pub/y
/ctx/z"
t_eq "rw context bind leaves the context alone" "$(cat "$c/sub/z")" top
t_ok "...and adds nothing to it" test ! -e "$c/newfile"
t_eq "cache from a stage starts with its tree" "$(cat "$r/cacheseed")" v1
for d in mnt ctx c; do
    t_ok "no /$d mount point left in the image" test ! -e "$r/$d"
done
t_ok "no temp dir left" bash -c "[ -z \"\$(ls -A '$MKIMG_ROOT/tmp')\" ]"

cached() { grep -B1 ' => CACHED' "$T/out" | grep -oE '^\[[0-9]+/' | tr -d '[/' | tr '\n' ' '; }
"$MKIMG" build -t m "$c" >"$T/out" 2>&1
t_eq "rebuild: every step cached" "$(cached)" "3 5 6 7 8 9 10 11 "
echo more-secret >"$c/sub/private/x"; echo other >"$c/sub/drop.log"
"$MKIMG" build -t m "$c" >"$T/out" 2>&1
t_eq "an ignored file changes nothing" "$(cached)" "3 5 6 7 8 9 10 11 "
echo pub2 >"$c/sub/pub/y"
"$MKIMG" build -t m "$c" >"$T/out" 2>&1
# (The RUN after them re-runs too: the last one's output, /y, changed its layer.)
t_eq "a bound context file re-runs its steps" "$(cached)" "3 5 6 7 8 "
"$MKIMG" build --build-arg V=v2 -t m "$c" >"$T/out" 2>&1
t_eq "a changed from-stage re-runs the first step mounting it" "$(cached)" ""
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:m:latest" "$T/u" >/dev/null 2>&1
t_eq "...with the new content" "$(cat "$r/got" | tail -1)" v2
t_eq "a cache from a changed stage starts over from it" "$(cat "$r/cacheseed") $(cat "$r/cachemore")" "v2 more"
echo pub3 >"$c/sub/pub/y"
"$MKIMG" build --build-arg V=v2 -t m "$c" >"$T/out" 2>&1
t_eq "...while the stage stays the same" "$(cached)" "3 5 6 7 8 "
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:m:latest" "$T/u" >/dev/null 2>&1
t_eq "the cache from a stage persists across builds" "$(cat "$r/cachemore")" "more
more"

printf 'FROM busybox\nRUN --mount=type=bind,from=nosuchstage,target=/x true\n' >"$c/Dockerfile"
"$MKIMG" build --pull=never -t bad "$c" >/dev/null 2>"$T/err"
t_eq "unknown from= exits 1" "$?" 1
t_grep "unknown from= message" '^mkimg: Dockerfile:2: .*nosuchstage' "$T/err"
printf 'FROM busybox\nRUN --mount=type=bind,source=nosuch,target=/x true\n' >"$c/Dockerfile"
"$MKIMG" build -q -t bad "$c" >/dev/null 2>"$T/err"
t_eq "missing context source: message" "$(cat "$T/err")" \
    'mkimg: Dockerfile:2: --mount source "nosuch" not found in the build context'
printf 'FROM busybox\nRUN --mount=type=bind,target=/ true\n' >"$c/Dockerfile"
"$MKIMG" build -q -t bad "$c" >/dev/null 2>"$T/err"
t_eq "target / is refused" "$(cat "$T/err")" 'mkimg: Dockerfile:2: invalid mount target "/"'
t_done
