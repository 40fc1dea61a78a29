#!/usr/bin/env bash
# The new build inputs as an ordinary user (inside mkimg's user namespace): a tar context on
# stdin, -f -, a git repository over http, --build-context with a directory and a git URL,
# ADD <git URL>; the temp dirs go afterwards.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
command -v git >/dev/null || { t_skip "git not installed"; t_done; exit; }
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }

mkdir -p "$T/u/ctx" "$T/repos"
cp "$MKIMG" "$T/u/mkimg"
cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
printf 'FROM busybox\nCOPY a /a\nRUN cat /a\n' >"$T/u/ctx/Dockerfile"
echo rootless-ctx >"$T/u/ctx/a"
tar -C "$T/u/ctx" -czf "$T/u/ctx.tgz" .
w=$T/work; mkdir -p "$w/sub"
git init -q -b main "$w"
cp "$T/u/ctx/Dockerfile" "$T/u/ctx/a" "$w/sub/"
git -C "$w" add . && git -C "$w" -c user.name=t -c user.email=t@t commit -qm one
git clone -q --bare "$w" "$T/repos/repo.git"
chown -R "$user" "$T/u"
t_ok "start the git HTTP server" git_http_start "$T/repos"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= HOME='$T/u' $*"; }

t_ok "rootless rootfs" as_user ./busybox-rootfs.sh rootfs
t_ok "rootless import" as_user ./mkimg import rootfs busybox:latest
t_ok "rootless build - from a .tar.gz" as_user "./mkimg build -q -t from-tgz - <ctx.tgz"
t_eq "the tar was the context" "$(as_user ./mkimg run from-tgz cat /a 2>/dev/null)" rootless-ctx
t_ok "rootless build -f -" as_user "./mkimg build -q -t from-stdin -f - ctx <ctx/Dockerfile"
t_ok "rootless build of a git URL" as_user ./mkimg build -q -t from-git "http://$GIT_HTTP/repo.git#main:sub"
t_eq "the repository's sub/ was the context" "$(as_user ./mkimg run from-git cat /a 2>/dev/null)" rootless-ctx
mkdir -p "$T/u/nc" && echo from-dir >"$T/u/nc/f"
printf 'FROM busybox\nCOPY --from=d /f /from-dir\nCOPY --from=g /a /from-git\nADD %s /added\n' \
    "http://$GIT_HTTP/repo.git#main:sub" >"$T/u/nc/Dockerfile"
chown -R "$user" "$T/u/nc"
t_ok "rootless --build-context with a directory and a git URL, and ADD <git URL>" \
    as_user ./mkimg build -q -t nc --build-context d=nc --build-context "g=http://$GIT_HTTP/repo.git#main:sub" nc
t_eq "the directory, the repository and the ADDed repository" \
    "$(as_user ./mkimg run nc cat /from-dir /from-git /added/a 2>/dev/null | tr '\n' ' ')" \
    "from-dir rootless-ctx rootless-ctx "
t_eq "no temp dir left in the store" "$(ls -A "$T/u/store/tmp" | wc -l)" 0
t_done
