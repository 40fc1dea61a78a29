#!/usr/bin/env bash
# The typed instruction layer through the CLI: RUN --mount, --network, --chmod, --checksum,
# EXPOSE and ONBUILD triggers are checked when the Dockerfile is read (parse --check and
# build), with "mkimg: FILE:LINE: WHAT", before any stage runs, in every stage.
. "$(dirname "$0")/../lib/test-lib.sh"

check() { # name, expected stderr line, Dockerfile text
    printf '%s' "$3" >"$T/df"
    "$MKIMG" parse --check -f "$T/df" >/dev/null 2>"$T/err"; rc=$?
    t_eq "$1" "$rc:$(cat "$T/err")" "1:mkimg: $T/df:$2"
}

check "unknown --mount key" '2: --mount=target=/c,colour=red: unknown key "colour"' \
    $'FROM a\nRUN --mount=target=/c,colour=red true\n'
check "bad --mount boolean" '2: --mount=target=/c,ro=maybe: invalid boolean value "maybe" for ro' \
    $'FROM a\nRUN --mount=target=/c,ro=maybe true\n'
check "bad --mount mode" '2: --mount=type=cache,target=/c,mode=999: invalid mode, uid or gid' \
    $'FROM a\nRUN --mount=type=cache,target=/c,mode=999 true\n'
check "bad --network" '2: unknown network mode "bridge" (use default, none or host)' \
    $'FROM a\nRUN --network=bridge true\n'
check "bad --chmod" '2: invalid --chmod value "u+z" (octal, e.g. 0755, or symbolic, e.g. u=rwx,go=rx)' \
    $'FROM a\nCOPY --chmod=u+z a b\n'
check "bad EXPOSE port" '3: EXPOSE: invalid port "80/http": invalid proto "http"' \
    $'FROM a\nEXPOSE 80\nEXPOSE 80/http\n'
check "bad ONBUILD trigger" '2: --mount type "ssh" is not supported (use bind, cache, tmpfs or secret)' \
    $'FROM a\nONBUILD RUN --mount=type=ssh x\n'
check "ADD --checksum with two sources" "2: checksum can't be specified for multiple sources" \
    $'FROM a\nADD --checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef http://h/a http://h/b /d/\n'
printf 'FROM a\nRUN --mount=type=cache,target=$T,sharing=$S true\n' >"$T/df"
t_ok "values to expand are left for the build" "$MKIMG" parse --check -f "$T/df"

# A build refuses a bad instruction in a stage it does not even need, before running anything.
t_ok "import busybox base" t_import_busybox
mkdir -p "$T/ctx"
cat >"$T/ctx/Dockerfile" <<'DF'
FROM busybox AS unused
RUN --mount=type=cache,target=/c,sharing=sometimes true
FROM busybox
RUN touch /ran
DF
"$MKIMG" build -t typed "$T/ctx" >"$T/out" 2>"$T/err"; rc=$?
t_eq "build fails on the unneeded stage's mount" "$rc:$(tail -n1 "$T/err")" \
    "1:mkimg: Dockerfile:2: --mount sharing=sometimes: unknown mode (shared, private or locked)"
t_fails "nothing tagged" "$MKIMG" inspect typed
t_done
