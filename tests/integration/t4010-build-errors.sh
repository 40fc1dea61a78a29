#!/usr/bin/env bash
# Failures a user can cause: one "mkimg: WHERE: WHAT" line, non-zero exit, nothing left behind.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
no_leftovers() {
    [ -z "$(ls -A "$MKIMG_ROOT/tmp")" ] && ! grep -q "$MKIMG_ROOT" /proc/self/mountinfo
}
ctx() { mkdir -p "$T/$1"; cat >"$T/$1/Dockerfile"; }

ctx fail <<'DF'
FROM busybox
RUN echo ok
RUN exit 3
DF
"$MKIMG" build -t bad "$T/fail" >"$T/out" 2>"$T/err"; rc=$?
t_eq "failed RUN exits 1" "$rc" 1
t_eq "failed RUN message" "$(tail -n1 "$T/err")" 'mkimg: Dockerfile:3: RUN "exit 3": exit status 3'
t_fails "nothing tagged after a failed build" "$MKIMG" inspect bad
t_ok "no temp dir or mount left" no_leftovers

ctx typo <<'DF'
FROM busybox
RUNN echo hi
DF
"$MKIMG" build -t bad "$T/typo" >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown instruction exits 1" "$rc" 1
t_grep "unknown instruction hint" '^mkimg: Dockerfile:2: unknown instruction "RUNN" \(did you mean "RUN"\?\)$' "$T/err"

ctx nobase <<'DF'
FROM nosuchimage:1.0
RUN true
DF
"$MKIMG" build --pull=never -t bad "$T/nobase" >/dev/null 2>"$T/err"; rc=$?
t_eq "missing base exits 1" "$rc" 1
t_grep "missing base message (offline)" '^mkimg: Dockerfile:1: base image "nosuchimage:1.0": image not in the store, and pulling is off \(--pull=never\)$' "$T/err"

ctx nosrc <<'DF'
FROM busybox
COPY missing.txt /x
DF
"$MKIMG" build -t bad "$T/nosrc" >/dev/null 2>"$T/err"; rc=$?
t_eq "missing COPY source exits 1" "$rc" 1
t_grep "missing COPY source message" '^mkimg: Dockerfile:2: .*"missing.txt": file not found in build context' "$T/err"
t_ok "no temp dir or mount left after COPY failure" no_leftovers

"$MKIMG" build -t 'Bad Name' "$T/fail" >/dev/null 2>"$T/err"; rc=$?
t_ok "invalid tag is rejected before building" test "$rc" -ne 0
"$MKIMG" build >/dev/null 2>"$T/err"; rc=$?
t_eq "missing context is a usage error" "$rc" 2
"$MKIMG" build "$T/does-not-exist" >/dev/null 2>"$T/err"; rc=$?
t_eq "context that does not exist exits 1" "$rc" 1

# Ctrl-C during a RUN: the container dies, nothing is tagged, nothing is left behind.
# The RUN's shell carries a mark of this run, so that pgrep sees no other test's sleep.
mark="t4010-$$-sleeper"
ctx slow <<DF
FROM busybox
RUN sleep 60; : $mark
DF
running() { pgrep -f -- "$mark" >/dev/null; }
started() { for _ in $(seq 100); do running && return 0; sleep 0.1; done; return 1; }
gone() { for _ in $(seq 50); do running || return 0; sleep 0.1; done; return 1; }
"$MKIMG" build -t slow "$T/slow" >/dev/null 2>"$T/err" &
pid=$!
t_ok "the RUN is running" started
kill -INT $pid
wait $pid; rc=$?
t_ok "SIGINT during RUN exits non-zero" test "$rc" -ne 0
t_fails "nothing tagged after SIGINT" "$MKIMG" inspect slow
t_ok "the container's sleep is gone" gone
t_ok "no temp dir or mount left after SIGINT" no_leftovers

"$MKIMG" build -t slow "$T/slow" >/dev/null 2>"$T/err" &
pid=$!
t_ok "the RUN is running again" started
kill -TERM $pid
wait $pid; rc=$?
t_ok "SIGTERM during RUN exits non-zero" test "$rc" -ne 0
t_ok "no temp dir or mount left after SIGTERM" no_leftovers

# SIGKILL: mkimg cannot clean up itself; the next run of mkimg on the store does.
"$MKIMG" build -t slow "$T/slow" >/dev/null 2>&1 &
pid=$!
t_ok "the RUN is running a third time" started
kill -KILL $pid; wait $pid 2>/dev/null
t_ok "the container dies with a SIGKILLed mkimg" gone
"$MKIMG" images >/dev/null 2>&1
t_ok "stale temp dirs are removed by the next mkimg" no_leftovers
t_done
