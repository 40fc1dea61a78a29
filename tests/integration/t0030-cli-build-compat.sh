#!/usr/bin/env bash
# buildx habits build accepts: BUILDKIT_PROGRESS as the default --progress (--progress wins),
# --load (the image is in the local store anyway), --allow network.host.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c"
printf 'FROM busybox\nRUN echo hi\n' >"$c/Dockerfile"

BUILDKIT_PROGRESS=quiet "$MKIMG" build --no-cache "$c" >"$T/out" 2>"$T/err"
t_eq "BUILDKIT_PROGRESS=quiet builds" "$?" 0
t_eq "and shows no steps" "$(cat "$T/err")" ""
BUILDKIT_PROGRESS=quiet "$MKIMG" build --progress=plain --no-cache "$c" >/dev/null 2>"$T/err"
t_grep "--progress wins over BUILDKIT_PROGRESS" '^\[2/2\] RUN echo hi$' "$T/err"
BUILDKIT_PROGRESS=bogus "$MKIMG" build "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a bad BUILDKIT_PROGRESS is a usage error" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: unknown BUILDKIT_PROGRESS "bogus" (auto, plain, tty or quiet)'
t_ok "--load is accepted" "$MKIMG" build -q --load -t loaded "$c"
t_ok "and the image is in the store" "$MKIMG" inspect loaded
t_ok "--allow network.host is accepted" "$MKIMG" build -q --allow network.host "$c"
t_done
