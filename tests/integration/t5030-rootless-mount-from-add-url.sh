#!/usr/bin/env bash
# Rootless: RUN --mount from a stage (rw), a context bind that hides .dockerignore'd files
# (whiteouts made inside the user namespace), ADD <url> and COPY --link, built by an
# ordinary user with a subordinate id range.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }

mkdir -p "$T/u/ctx/sub" "$T/srv"
cp "$MKIMG" "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
echo hidden >"$T/u/ctx/sub/secret"; echo shown >"$T/u/ctx/sub/shown"
printf 'sub/secret\n' >"$T/u/ctx/.dockerignore"
echo fetched >"$T/srv/dl.txt"
t_ok "start the HTTP server" http_start "$T/srv"
cat >"$T/u/ctx/Dockerfile" <<DF
FROM busybox AS b
RUN mkdir /o && echo staged > /o/s && chown 1000:1000 /o/s
FROM busybox
RUN --mount=type=bind,from=b,source=/o,target=/m,rw cat /m/s > /got && stat -c %u /m/s > /owner && echo x > /m/s
RUN --mount=type=bind,target=/ctx,rw ls /ctx/sub | tr '\n' ' ' > /ls && rm /ctx/sub/shown
ADD --chown=5:6 http://$HTTP/dl.txt /dl/
COPY --link sub/shown /linked/
DF
chown -R "$user" "$T/u"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }
t_ok "rootless rootfs" as_user ./busybox-rootfs.sh rootfs
t_ok "rootless import" as_user ./mkimg import rootfs busybox:latest
t_ok "rootless build" as_user ./mkimg build -t m ctx
t_ok "umoci unpack" umoci unpack --image "$T/u/store:m:latest" "$T/x"
r=$T/x/rootfs
t_eq "bind from a stage" "$(cat "$r/got")" staged
t_eq "...with the stage's owners" "$(cat "$r/owner")" 1000
t_eq "ignored files hidden, others shown" "$(cat "$r/ls")" "shown "
t_ok "the context is untouched" test -e "$T/u/ctx/sub/shown"
t_eq "ADD <url> with --chown" "$(stat -c '%u:%g %a' "$r/dl/dl.txt") $(cat "$r/dl/dl.txt")" "5:6 600 fetched"
t_eq "COPY --link" "$(cat "$r/linked/shown")" shown
t_done
