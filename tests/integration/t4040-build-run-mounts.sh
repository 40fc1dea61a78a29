#!/usr/bin/env bash
# RUN --mount: cache (persists across builds, not in the layer), bind from the context
# (read-only), tmpfs, secret (never in a layer, the history or the store).
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c/sub" "$c/private"
echo ctxfile >"$c/sub/data"; echo hidden >"$c/private/x"; echo private >"$c/.dockerignore"
echo topsecret-4711 >"$T/secret.txt"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /cachelines
RUN --mount=type=bind,source=sub,target=/mnt/ctx cat /mnt/ctx/data > /bindout && ! touch /mnt/ctx/new 2>/dev/null
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secretlen && test "$(stat -c %a /run/secrets/tok)" = 400
RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0444 cp /etc/tok /tmp/leak-check-only-length && wc -c < /tmp/leak-check-only-length > /secretlen2 && rm /tmp/leak-check-only-length
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfsout
DF
t_ok "build with mounts" "$MKIMG" build -t mnt --secret id=tok,src="$T/secret.txt" "$c"
r=$T/u/rootfs
umoci unpack --image "$MKIMG_ROOT:mnt:latest" "$T/u" >/dev/null 2>&1
t_eq "cache mount used" "$(cat "$r/cachelines")" 1
t_eq "bind from the context, read-only" "$(cat "$r/bindout")" ctxfile
t_eq "secret readable at /run/secrets/ID" "$(cat "$r/secretlen")" 15
t_eq "secret at a chosen target" "$(cat "$r/secretlen2")" 15
t_eq "tmpfs mounted" "$(cat "$r/tmpfsout")" x
for d in cache mnt run scratch etc/tok; do
    t_ok "no /$d mount point left in the image" test ! -e "$r/$d"
done
t_ok "secret value in no blob, snapshot or cache entry" \
    bash -c "! grep -rqs topsecret-4711 '$MKIMG_ROOT/blobs' '$MKIMG_ROOT/snapshots' '$MKIMG_ROOT/cache'"
t_ok "no secret file left in tmp" bash -c "[ -z \"\$(ls -A '$MKIMG_ROOT/tmp')\" ]"

t_ok "rebuild without cache" "$MKIMG" build -q --no-cache -t mnt2 --secret id=tok,src="$T/secret.txt" "$c"
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:mnt2:latest" "$T/u" >/dev/null 2>&1
t_eq "cache mount persists across builds" "$(cat "$r/cachelines")" 2

cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=secret,id=missing,required=true true
DF
"$MKIMG" build -t bad "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "missing required secret exits 1" "$rc" 1
t_grep "missing required secret message" '^mkimg: Dockerfile:2: secret "missing" is required but was not given' "$T/err"
printf 'FROM busybox\nRUN --mount=type=secret,id=optional true\n' >"$c/Dockerfile"
t_ok "missing optional secret is skipped" "$MKIMG" build -q -t ok "$c"
printf 'FROM busybox\nRUN --mount=type=bind,source=private,target=/p true\n' >"$c/Dockerfile"
"$MKIMG" build -t bad "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "bind of an ignored path exits 1" "$rc" 1
t_grep "bind of an ignored path message" 'excluded by \.dockerignore' "$T/err"
# BuildKit's env=: the secret in a variable of the RUN, no file unless a target is given;
# the value stays out of the image, its history and its config.
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=secret,id=tok,env=TOKEN test "${#TOKEN}" = 15 && test ! -e /run/secrets/tok && echo env-ok > /envsecret
RUN --mount=type=secret,id=tok,env=TOKEN,target=/run/t test "$(printf %s "$TOKEN")" = "$(cat /run/t)" && echo both-ok > /envsecret2
DF
t_ok "secret as an environment variable (env=)" "$MKIMG" build -q -t envs --secret id=tok,src="$T/secret.txt" "$c"
t_ok "unpack env= image" umoci unpack --image "$MKIMG_ROOT:envs:latest" "$T/envs"
t_eq "env= gives the value and no file" "$(cat "$T/envs/rootfs/envsecret")" env-ok
t_eq "env= with a target gives both" "$(cat "$T/envs/rootfs/envsecret2")" both-ok
t_ok "env= secret value in no blob, snapshot or cache entry" \
    bash -c "! grep -rqs topsecret-4711 '$MKIMG_ROOT/blobs' '$MKIMG_ROOT/snapshots' '$MKIMG_ROOT/cache'"
printf 'FROM busybox\nRUN --mount=type=ssh true\n' >"$c/Dockerfile"
"$MKIMG" build -t bad "$c" >/dev/null 2>"$T/err"; rc=$?
t_grep "unsupported mount type message" '^mkimg: Dockerfile:2: --mount type "ssh" is not supported' "$T/err"
t_done
