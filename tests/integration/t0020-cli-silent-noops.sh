#!/usr/bin/env bash
# What used to be accepted and then quietly did nothing (or the wrong thing) is an error now:
# a --secret whose source is missing (env= unset, the short form id=X with neither a variable
# nor a file X, a missing src=), build --push without -t, a name with a digest or a 300-char
# tag (refused before the build), rmi -f; --root creating a store says so; control bytes of
# a garbage Dockerfile are escaped when printed.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c"
printf 'FROM busybox\nRUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n' >"$c/Dockerfile"

unset UNSET
"$MKIMG" build -q --secret id=tok,env=UNSET "$c" >"$T/out" 2>"$T/err"; rc=$?
t_eq "env= naming an unset variable: exit 1" "$rc" 1
t_eq "the message names the secret and the variable" "$(cat "$T/err")" \
    'mkimg: build: secret "tok": environment variable "UNSET" is not set'
t_eq "nothing was built" "$(cat "$T/out")" ""
(cd "$T" && env -u tok "$MKIMG" build -q --secret id=tok "$c") >/dev/null 2>"$T/err"; rc=$?
t_eq "short form with neither a variable nor a file: exit 1" "$rc" 1
t_eq "the message names the secret" "$(cat "$T/err")" \
    'mkimg: build: secret "tok": no environment variable or file named "tok" (use --secret id=tok,src=PATH or env=VAR)'
"$MKIMG" build -q --secret id=tok,src="$T/none" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing src= file: exit 1" "$rc:$(cat "$T/err")" \
    "1:mkimg: build: secret \"tok\": \"$T/none\": No such file or directory"
tok=from-env "$MKIMG" build --no-cache --progress=plain --secret id=tok "$c" >"$T/out" 2>&1
t_eq "short form: the variable named like the id" "$?" 0
t_grep "its value reached RUN" '^from-env$|#[0-9]+ [0-9.]+ from-env$' "$T/out"
echo from-file >"$T/tok"
(cd "$T" && env -u tok "$MKIMG" build --no-cache --progress=plain --secret id=tok "$c") >"$T/out" 2>&1
t_eq "short form: else the file named like the id" "$?" 0
t_grep "its content reached RUN" 'from-file' "$T/out"
t_ok "type=env takes the variable named like the id" \
    env tok=x "$MKIMG" build -q --no-cache --secret type=env,id=tok "$c"

"$MKIMG" build -q --push "$c" >"$T/out" 2>"$T/err"; rc=$?
t_eq "--push without -t: exit 2 before building" "$rc:$(cat "$T/out")" 2:
t_eq "--push without -t: message" "$(cat "$T/err")" \
    'mkimg: build: --push needs a name to push to (-t NAME)'

d=sha256:$(printf '0%.0s' $(seq 64))
"$MKIMG" build -q -t "foo:tag@$d" --secret id=tok,src="$T/tok" "$c" >"$T/out" 2>"$T/err"; rc=$?
t_eq "-t with a digest: exit 1 before building" "$rc:$(cat "$T/out")" 1:
t_eq "-t with a digest: message" "$(cat "$T/err")" \
    "mkimg: invalid name \"foo:tag@$d\": an image cannot be named with a digest (NAME[:TAG])"
long=$(printf 'a%.0s' $(seq 300))
"$MKIMG" build -q -t "foo:$long" --secret id=tok,src="$T/tok" "$c" >"$T/out" 2>"$T/err"; rc=$?
t_eq "a 300-character tag: exit 1 before building" "$rc:$(cat "$T/out")" 1:
t_eq "a 300-character tag: message" "$(cat "$T/err")" \
    "mkimg: invalid reference \"foo:$long\": a tag has at most 128 characters"
"$MKIMG" tag busybox "foo:tag@$d" 2>"$T/err"; rc=$?
t_eq "tag TARGET with a digest: exit 1" "$rc" 1
t_ok "and no such name was made" bash -c '! "$1" images | grep -q "^foo "' _ "$MKIMG"

t_ok "tag an image to remove" "$MKIMG" tag busybox gone:1
"$MKIMG" rmi -f gone:1 >/dev/null 2>"$T/err"; rc=$?
t_eq "rmi -f NAME: exit 0" "$rc:$(cat "$T/err")" 0:
t_fails "the name is gone" "$MKIMG" inspect gone:1
"$MKIMG" rmi -f gone:1 >/dev/null 2>&1; rc=$?
t_eq "rmi -f of a missing name: exit 1" "$rc" 1
"$MKIMG" rmi --bogus x >/dev/null 2>&1; rc=$?
t_eq "rmi with an unknown option: exit 2" "$rc" 2

"$MKIMG" --root "$T/typo" images >/dev/null 2>"$T/err"
t_eq "--root creating a new store says so" "$(cat "$T/err")" \
    "mkimg: warning: --root \"$T/typo\" does not exist: creating a new, empty store there"
"$MKIMG" --root "$T/typo" images >/dev/null 2>"$T/err"
t_eq "but only the first time" "$(cat "$T/err")" ""

printf 'FROM busybox\n\033[31mRUNN x\n' >"$T/garbage"
"$MKIMG" build -f "$T/garbage" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a garbage Dockerfile fails" "$rc" 1
t_eq "its control bytes are escaped" "$(cat "$T/err")" \
    "mkimg: $T/garbage:2: unknown instruction \"\\x1b[31mRUNN\""
t_done
