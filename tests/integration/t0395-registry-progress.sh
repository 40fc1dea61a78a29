#!/usr/bin/env bash
# Pull and push say how each blob moves: periodic lines with bytes, total and rate while it
# goes, one line when it is done; on a terminal (script(1) gives one) a live line per blob
# instead; -q says nothing. ($MKIMG_PROGRESS_INTERVAL_MS=0 makes every callback print, so the
# plain checks do not depend on how fast this machine is.)
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
t_import_busybox
if ! reg_start; then t_fail "registry starts"; t_done; exit 1; fi
c=$T/ctx; mkdir -p "$c"
head -c 6000000 /dev/urandom >"$c/blob"
printf 'FROM busybox\nCOPY blob /blob\n' >"$c/Dockerfile"
t_ok "build an image with a 6 MB layer" "$MKIMG" build -q -t big:1 "$c"
export MKIMG_PROGRESS_INTERVAL_MS=0
"$MKIMG" push --compression-format none big:1 "$REG/p/big:1" >/dev/null 2>"$T/push.log"
t_eq "push succeeds" "$?" 0
t_grep "push: bytes, total and rate while a blob goes" \
    '^pushing sha256:[0-9a-f]{12}: [0-9.]+ [kM]?B of 6\.0[0-9] MB, [0-9.]+ [kMG]?B/s' "$T/push.log"
t_grep "push: a line when it is done" '^pushed sha256:[0-9a-f]{12}: 6\.0[0-9] MB in [0-9.]+s, ' \
    "$T/push.log"
MKIMG_ROOT=$T/s2 "$MKIMG" pull "$REG/p/big:1" >/dev/null 2>"$T/pull.log"
t_eq "pull succeeds" "$?" 0
t_grep "pull: bytes, total and rate while a blob goes" \
    '^pulling sha256:[0-9a-f]{12}: [0-9.]+ [kM]?B of 6\.0[0-9] MB, [0-9.]+ [kMG]?B/s' "$T/pull.log"
t_grep "pull: a line when it is done" '^pulled sha256:[0-9a-f]{12}: 6\.0[0-9] MB in [0-9.]+s, ' \
    "$T/pull.log"
t_eq "not on a terminal: no escape sequences" "$(grep -c $'\033' "$T/pull.log" "$T/push.log" | grep -vc ':0$')" 0
if command -v script >/dev/null; then
    script -qec "MKIMG_ROOT='$T/s4' '$MKIMG' pull '$REG/p/big:1'" /dev/null >"$T/tty.log" 2>&1
    t_grep "on a terminal: the live block is redrawn" $'\033\\[K(pulling|fetching)' "$T/tty.log"
    t_grep "and each blob ends with its line" '^pulled sha256:[0-9a-f]{12}: 6\.0[0-9] MB in ' \
        <(tr -d '\r' <"$T/tty.log" | sed 's/\x1b\[[0-9]*[AJK]//g')
    t_ok "the pull on a terminal worked" env MKIMG_ROOT="$T/s4" "$MKIMG" inspect "$REG/p/big:1"
else
    t_skip "script(1) not installed"
fi
MKIMG_ROOT=$T/s3 "$MKIMG" pull -q "$REG/p/big:1" >/dev/null 2>"$T/quiet.log"
t_eq "-q: no progress" "$(grep -c 'pulling sha256\|pulled sha256' "$T/quiet.log")" 0
t_done
