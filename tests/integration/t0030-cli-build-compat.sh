#!/usr/bin/env bash
# buildx habits build accepts: BUILDKIT_PROGRESS as the default --progress (--progress wins),
# --progress=rawjson (BuildKit's SolveStatus lines),
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
    '2:mkimg: build: unknown BUILDKIT_PROGRESS "bogus" (auto, plain, tty, rawjson or quiet)'
"$MKIMG" build --progress=rawjson --no-cache "$c" >/dev/null 2>"$T/json"
t_eq "--progress=rawjson builds" "$?" 0
t_ok "every line on stderr is a JSON object" jq -e -s 'length > 0 and all(type == "object")' "$T/json"
t_eq "the RUN step is a vertex that completed" \
    "$(jq -r 'select(.vertexes) | .vertexes[] | select(.completed) | .name' "$T/json" | grep RUN)" \
    '[2/2] RUN echo hi'
t_eq "its output is a log of that vertex, base64 as BuildKit's" \
    "$(jq -r --arg d "$(jq -r '.vertexes[]? | select(.name == "[2/2] RUN echo hi") | .digest' "$T/json" | head -1)" \
        'select(.logs) | .logs[] | select(.vertex == $d) | .data' "$T/json")" 'aGkK'
BUILDKIT_PROGRESS=rawjson "$MKIMG" build -q "$c" >/dev/null 2>"$T/json2"
t_ok "BUILDKIT_PROGRESS=rawjson is quiet with -q" test ! -s "$T/json2"
BUILDKIT_PROGRESS=rawjson "$MKIMG" build "$c" >/dev/null 2>"$T/json3"
t_ok "BUILDKIT_PROGRESS=rawjson: JSON only" jq -e -s 'length > 0 and all(type == "object")' "$T/json3"
t_ok "--load is accepted" "$MKIMG" build -q --load -t loaded "$c"
t_ok "and the image is in the store" "$MKIMG" inspect loaded
t_ok "--allow network.host is accepted" "$MKIMG" build -q --allow network.host "$c"
t_done
