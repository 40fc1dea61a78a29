#!/usr/bin/env bash
# build --build-context NAME=VALUE as buildx takes it: VALUE a directory, docker-image://REF,
# oci-layout://PATH[:TAG|@DIGEST], an https tarball or a git URL. The context replaces the
# stage or image NAME wherever the Dockerfile uses it (FROM NAME, COPY --from=NAME,
# RUN --mount=from=NAME), a stage of that name included; bad values are one-line errors.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"
. "$MKIMG_TOP/tests/lib/registry.sh" # reg_tls_certs: a test CA and a 127.0.0.1 certificate

t_ok "import busybox base" t_import_busybox
c=$T/ctx; d=$T/dir; mkdir -p "$c" "$d"
echo from-dir >"$d/f"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
COPY --from=extra /f /copied
RUN --mount=from=extra,target=/m cat /m/f >/mounted
DF

# ---- a local directory
t_ok "a directory as a named context" "$MKIMG" build -q -t nd --build-context extra="$d" "$c"
t_eq "COPY --from=NAME took the directory" "$("$MKIMG" run nd cat /copied)" from-dir
t_eq "RUN --mount=from=NAME mounted it" "$("$MKIMG" run nd cat /mounted)" from-dir
"$MKIMG" build --progress=plain -t nd --build-context extra="$d" "$c" >/dev/null 2>"$T/log"
t_eq "the same directory again: all cached" "$(grep -c '=> CACHED' "$T/log")" 2
echo changed >"$d/f"
"$MKIMG" build -q -t nd --build-context extra="$d" "$c" >/dev/null
t_eq "a changed directory is seen" "$("$MKIMG" run nd cat /copied)" changed
printf 'FROM extra\n' >"$c/Dockerfile.from"
t_ok "FROM NAME with a directory" "$MKIMG" build -q -t nd-from -f "$c/Dockerfile.from" \
    --build-context extra="$d" -o "type=local,dest=$T/from-out" "$c"
t_eq "its root is the directory, and only it" "$(ls -A "$T/from-out" | tr '\n' ' ')" "f "
t_eq "in one layer" "$("$MKIMG" inspect nd-from | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["RootFS"]["Layers"]))')" 1

# ---- a stage of the same name is replaced (and not built)
cat >"$c/Dockerfile.stage" <<'DF'
FROM busybox AS extra
RUN echo stage-ran >/f && exit 7
FROM busybox
COPY --from=extra /f /copied
DF
t_ok "a named context overrides the stage of that name" "$MKIMG" build -q -t ns \
    -f "$c/Dockerfile.stage" --build-context extra="$d" "$c"
t_eq "the context's file, not the stage's" "$("$MKIMG" run ns cat /copied)" changed

# ---- docker-image://
"$MKIMG" build -q -t src-img:1 -f /dev/stdin "$c" >/dev/null <<'DF'
FROM busybox
RUN echo from-image >/f
DF
printf 'FROM alpine\nRUN cat /f >/seen\n' >"$c/Dockerfile.alpine"
t_ok "FROM alpine with --build-context alpine=docker-image://src-img:1" \
    "$MKIMG" build -q -t ni --pull=never -f "$c/Dockerfile.alpine" \
    --build-context alpine=docker-image://src-img:1 "$c"
t_eq "the image was the base" "$("$MKIMG" run ni cat /seen)" from-image
t_ok "COPY --from= docker-image:// too" "$MKIMG" build -q -t ni2 --pull=never \
    --build-context extra=docker-image://src-img:1 "$c"
t_eq "its file" "$("$MKIMG" run ni2 cat /copied /mounted | tr '\n' ' ')" "from-image from-image "

# ---- oci-layout://
# A layout of an image whose name is then gone from the store.
"$MKIMG" tag src-img:1 layout-only:1
"$MKIMG" save --format oci-dir -o "$T/layout" layout-only:1
"$MKIMG" rmi layout-only:1 >/dev/null
t_ok "oci-layout://PATH" "$MKIMG" build -q -t no --pull=never --build-context extra=oci-layout://"$T/layout" "$c"
t_eq "took the layout's image" "$("$MKIMG" run no cat /copied)" from-image
t_ok "oci-layout://PATH:TAG" "$MKIMG" build -q -t no2 --pull=never \
    --build-context extra=oci-layout://"$T/layout:1" "$c"
dg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$T/layout/index.json")
t_ok "oci-layout://PATH@DIGEST" "$MKIMG" build -q -t no3 --pull=never \
    --build-context extra=oci-layout://"$T/layout@$dg" "$c"
t_eq "took the layout's image" "$("$MKIMG" run no3 cat /mounted)" from-image
t_eq "loading a layout tags nothing" "$("$MKIMG" images | grep -c layout-only)" 0
"$MKIMG" build -q --build-context extra=oci-layout://"$T/layout:nope" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing tag in the layout fails" "$rc" 1
t_eq "naming it" "$(cat "$T/err")" \
    "mkimg: --build-context \"extra=oci-layout://$T/layout:nope\": \"$T/layout\": no image tagged \"nope\" in index.json"

# ---- an https tarball over loopback (its CA trusted through SSL_CERT_FILE)
srv=$T/srv; mkdir -p "$srv/t"
echo from-tarball >"$srv/t/f"
tar -C "$srv/t" -czf "$srv/ctx.tar.gz" .
reg_tls_certs
t_ok "start the HTTPS server" https_start "$srv" "$T/srv.crt" "$T/srv.key"
t_ok "an https tarball as a named context" env SSL_CERT_FILE="$T/certs/ca.crt" \
    "$MKIMG" build -q -t nh --build-context extra="https://$HTTPS/ctx.tar.gz" "$c"
t_eq "its file" "$("$MKIMG" run nh cat /copied)" from-tarball

# ---- a git URL
if command -v git >/dev/null; then
    git_test_repo "$T/work" "$T/repos/repo.git"
    t_ok "start the git HTTP server" git_http_start "$T/repos"
    t_ok "a git URL #ref:subdir as a named context" "$MKIMG" build -q -t ng \
        --build-context extra="http://$GIT_HTTP/repo.git#v1:sub" "$c"
    t_eq "its file, at the ref" "$("$MKIMG" run ng cat /copied)" one
else
    t_skip "git not installed"
fi

# ---- errors: one line each, before anything is built
check_err() { # DESCRIPTION RC LINE ARGS...
    local desc=$1 want_rc=$2 line=$3 rc
    shift 3
    "$MKIMG" build -q "$@" "$c" >/dev/null 2>"$T/err"; rc=$?
    t_eq "$desc: exit $want_rc" "$rc" "$want_rc"
    t_eq "$desc: message" "$(cat "$T/err")" "$line"
}
check_err "no =" 2 'mkimg: --build-context "foo": expected NAME=VALUE' --build-context foo
check_err "unknown scheme" 2 \
    'mkimg: --build-context "foo=ftp://x/y": unknown scheme "ftp://" (use a directory, docker-image://, oci-layout://, an http(s) URL or a git URL)' \
    --build-context foo=ftp://x/y
check_err "missing directory" 1 \
    "mkimg: --build-context \"foo=$T/none\": opening \"$T/none\": No such file or directory" \
    --build-context foo="$T/none"
check_err "invalid name" 2 'mkimg: --build-context "Foo=/": invalid context name "Foo"' --build-context Foo=/
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
