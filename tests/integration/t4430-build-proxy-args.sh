#!/usr/bin/env bash
# The predefined proxy ARGs (HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY and their
# lowercase forms): a --build-arg reaches RUN without an ARG line, never lands in the history,
# the config or a layer, and is not part of the cache key; declared with ARG it is an
# ordinary ARG (history and key). The marker has letters outside hex: a bare number turns up by
# chance in digests and tar mtimes (CI once failed on "4711" turning up so).
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c"
P=http://user:pw@proxy-zqxjkv.invalid:3128
h() { printf '%s\n' "$1" | sha256sum | cut -c1-16; }
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN for v in HTTP_PROXY https_proxy FTP_PROXY no_proxy ALL_PROXY; do eval "printf '%s\n' \"\$$v\"" | sha256sum | cut -c1-16; done > /seen
DF
args=(--build-arg "HTTP_PROXY=$P" --build-arg "https_proxy=$P/s" --build-arg FTP_PROXY=ftp-zqxjkv
    --build-arg no_proxy=np-zqxjkv --build-arg ALL_PROXY=all-zqxjkv)
t_ok "build with proxy build args" "$MKIMG" build -t px "${args[@]}" "$c"
"$MKIMG" build -t px "${args[@]}" "$c" >"$T/out" 2>&1
t_eq "and again (its output is read below)" "$?" 0
umoci unpack --image "$MKIMG_ROOT:px:latest" "$T/u" >/dev/null 2>&1
t_eq "RUN sees them without an ARG line" "$(tr '\n' ' ' <"$T/u/rootfs/seen")" \
    "$(h "$P") $(h "$P/s") $(h ftp-zqxjkv) $(h np-zqxjkv) $(h all-zqxjkv) "
t_ok "no 'not consumed' warning" bash -c "! grep -q 'not consumed' '$T/out'"
"$MKIMG" inspect px >"$T/inspect" 2>&1
t_ok "inspect works" test -s "$T/inspect"
t_ok "absent from inspect (history, config)" bash -c "! grep -q zqxjkv '$T/inspect'"
t_ok "absent from every blob and snapshot" \
    bash -c "! grep -rqs -- zqxjkv '$MKIMG_ROOT/blobs' '$MKIMG_ROOT/snapshots'"
"$MKIMG" build -t px --build-arg HTTP_PROXY=http://other-proxy:1 "$c" >"$T/out" 2>&1
t_grep "another proxy value does not miss the cache" 'CACHED' "$T/out"

printf 'FROM busybox\nARG HTTP_PROXY\nRUN echo "$HTTP_PROXY" > /declared\n' >"$c/Dockerfile"
t_ok "declared proxy ARG" "$MKIMG" build -t px2 --build-arg HTTP_PROXY=decl-4711 "$c"
"$MKIMG" inspect px2 >"$T/inspect" 2>&1
t_grep "a declared proxy ARG is in the history" 'HTTP_PROXY=decl-4711' "$T/inspect"
"$MKIMG" build -t px2 --build-arg HTTP_PROXY=decl-4712 "$c" >"$T/out" 2>&1
t_eq "another declared value builds" "$?" 0
t_ok "...and in the cache key" bash -c "! grep -q CACHED '$T/out'"

printf 'FROM busybox\nENV http_proxy=from-env\nRUN echo "$http_proxy" > /env\n' >"$c/Dockerfile"
t_ok "ENV of the same name" "$MKIMG" build -t px3 --build-arg http_proxy=arg-zqxjkv "$c"
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:px3:latest" "$T/u" >/dev/null 2>&1
t_eq "ENV wins over the build arg" "$(cat "$T/u/rootfs/env")" from-env
t_done
