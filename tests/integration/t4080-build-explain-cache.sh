#!/usr/bin/env bash
# --explain-cache names the input that made a step miss the cache: a changed file, a changed
# build-arg, a changed base image.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/c; mkdir -p "$c/src"
echo a >"$c/src/a.c"; echo b >"$c/src/b.c"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ARG VERSION=1
COPY src /src
RUN echo $VERSION > /v
DF
b() { "$MKIMG" build --explain-cache -t ex "$@" "$c" 2>&1 | grep '=>' ; }
b >"$T/o1"
t_eq "first build: no earlier build" "$(grep -c 'no earlier build of this step' "$T/o1")" 2
b >"$T/o2"
t_eq "nothing changed: all cached" "$(cat "$T/o2")" "$(printf ' => CACHED\n => CACHED')"
echo changed >"$c/src/b.c"
b >"$T/o3"
t_grep "a changed file is named" '^ => cache miss: file src/b.c changed$' "$T/o3"
b --build-arg VERSION=2 >"$T/o4"
t_grep "a changed build-arg is named" '^ => cache miss: env VERSION changed' "$T/o4"
"$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/root2" && echo extra >"$T/root2/extra"
t_ok "another image becomes busybox:latest" "$MKIMG" import "$T/root2" busybox:latest
b --build-arg VERSION=2 >"$T/o5"
t_grep "a changed base image is named" '^ => cache miss: base image changed$' "$T/o5"
t_done
