#!/usr/bin/env bash
# Remote build contexts as docker takes them: an http(s) URL of a tarball (or of a bare
# Dockerfile), a git repository over http with #ref:subdir (branch, tag, commit), fetched with
# the git program; .git is not part of the context; errors name the repository and git's reason.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"
. "$MKIMG_TOP/tests/lib/registry.sh" # reg_tls_certs: a test CA and a 127.0.0.1 certificate

command -v git >/dev/null || { echo "ok 1 - # SKIP git not installed"; echo 1..1; exit 0; }
t_ok "import busybox base" t_import_busybox

srv=$T/srv; c=$T/ctx; mkdir -p "$srv" "$c"
printf 'FROM busybox\nCOPY a /a\n' >"$c/Dockerfile"
echo from-tarball >"$c/a"
tar -C "$c" -czf "$srv/ctx.tar.gz" .
printf 'FROM busybox\nLABEL url=dockerfile\n' >"$srv/Dockerfile.txt"
t_ok "start the HTTP server" http_start "$srv"
t_ok "build an http tarball URL" "$MKIMG" build -q -t from-url "http://$HTTP/ctx.tar.gz"
t_eq "the tarball was the context" "$("$MKIMG" run from-url cat /a)" from-tarball
t_ok "build a URL of a bare Dockerfile" "$MKIMG" build -q -t url-df "http://$HTTP/Dockerfile.txt"
t_grep "the downloaded Dockerfile was used" '"url": *"dockerfile"' <("$MKIMG" inspect url-df)
"$MKIMG" build -q "http://$HTTP/missing.tar.gz" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing tarball fails" "$rc" 1
t_grep "naming the URL" "missing.tar.gz" "$T/err"

# https: verified, with the test CA trusted through SSL_CERT_FILE.
reg_tls_certs
t_ok "start the HTTPS server" https_start "$srv" "$T/srv.crt" "$T/srv.key"
"$MKIMG" build -q "https://$HTTPS/ctx.tar.gz" >/dev/null 2>"$T/err"; rc=$?
t_eq "an https tarball from an unknown CA fails" "$rc" 1
t_grep "on the certificate" 'certificate' "$T/err"
t_ok "with SSL_CERT_FILE naming the CA it builds" \
    env SSL_CERT_FILE="$T/certs/ca.crt" "$MKIMG" build -q -t from-https "https://$HTTPS/ctx.tar.gz"
t_eq "the https tarball was the context" "$("$MKIMG" run from-https cat /a)" from-tarball

# A repository with the Dockerfile in sub/, a tag v1 on the first commit, main one later.
mkdir -p "$T/work/sub"
printf 'FROM busybox\nCOPY . /ctx\n' >"$T/work/sub/Dockerfile"
git_test_repo "$T/work" "$T/repos/repo.git"
first=$GIT_FIRST
t_ok "start the git HTTP server" git_http_start "$T/repos"
U=http://$GIT_HTTP/repo.git

t_ok "build a git URL #main:sub" "$MKIMG" build -q -t git-main "$U#main:sub"
t_eq "the branch's sub/ was the context" "$("$MKIMG" run git-main cat /ctx/f)" two
t_ok ".git is not in the context" "$MKIMG" run git-main test ! -e /ctx/.git -a ! -e /.git
t_ok "build a git URL at a tag" "$MKIMG" build -q -t git-tag "$U#v1:sub"
t_eq "the tag's content" "$("$MKIMG" run git-tag cat /ctx/f)" one
t_ok "build a git URL at a commit" "$MKIMG" build -q -t git-sha "$U#$first:sub"
t_eq "the commit's content" "$("$MKIMG" run git-sha cat /ctx/f)" one
t_ok "options after a git context" "$MKIMG" build "$U#main:sub" -q -t git-after -f Dockerfile
t_ok "the default branch without a fragment, -f inside the repo" \
    "$MKIMG" build -q -t git-head -f sub/Dockerfile "$U"
t_eq "the whole repository was the context" "$("$MKIMG" run git-head cat /ctx/sub/f)" two

# git:// through git daemon on a free loopback port.
gport=$(reg_free_port)
git daemon --reuseaddr --export-all --base-path="$T/repos" --listen=127.0.0.1 --port="$gport" \
    "$T/repos" >/dev/null 2>&1 &
HTTP_PIDS="$HTTP_PIDS $!"
for i in $(seq 100); do git ls-remote "git://127.0.0.1:$gport/repo.git" >/dev/null 2>&1 && break; sleep 0.1; done
t_ok "build a git:// URL" "$MKIMG" build -q -t git-daemon "git://127.0.0.1:$gport/repo.git#v1:sub"
t_eq "git:// gave the tag's content" "$("$MKIMG" run git-daemon cat /ctx/f)" one

# https: the same repository over TLS, its CA trusted through SSL_CERT_FILE (which git gets
# as GIT_SSL_CAINFO unless that is set).
git_http_start "$T/repos" "$T/srv.crt" "$T/srv.key"
t_ok "build https://127.0.0.1:PORT/repo.git#main:sub" \
    env -u GIT_SSL_CAINFO SSL_CERT_FILE="$T/certs/ca.crt" "$MKIMG" build -q -t git-https \
    "https://$GIT_HTTP/repo.git#main:sub"
t_eq "https gave the branch's sub/" "$("$MKIMG" run git-https cat /ctx/f)" two
"$MKIMG" build -q "https://$GIT_HTTP/repo.git#main:sub" >/dev/null 2>"$T/err"; rc=$?
t_eq "an https repository from an unknown CA fails" "$rc" 1
t_grep "saying why" 'git fetch failed: .*(certificate|SSL|verif)' "$T/err"

"$MKIMG" build -q "$U#nobranch:sub" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing ref fails with exit 1" "$rc" 1
t_eq "naming the repository and git's reason" "$(cat "$T/err")" \
    "mkimg: fetching git context \"$U\": git fetch failed: fatal: couldn't find remote ref nobranch"
"$MKIMG" build -q "http://$GIT_HTTP/none.git#main" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing repository fails with exit 1" "$rc" 1
t_grep "naming it" "^mkimg: fetching git context \"http://$GIT_HTTP/none.git\": git fetch failed: " "$T/err"
"$MKIMG" build -q "$U#main:nodir" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing subdirectory fails" "$rc" 1
t_grep "naming it" 'subdirectory "nodir"' "$T/err"
t_ok "credentials in a URL are not shown" bash -c \
    '! "$1" build -q "http://user:s3cret@$2/none.git" 2>&1 | grep -q s3cret' _ "$MKIMG" "$GIT_HTTP"
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
