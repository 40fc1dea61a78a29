#!/usr/bin/env bash
# CLI basics: help, version, usage errors with exit 2.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "--help" "$MKIMG" --help
t_ok "version" "$MKIMG" version
"$MKIMG" frobnicate >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown command exits 2" "$rc" 2
t_eq "unknown command message" "$(cat "$T/err")" 'mkimg: unknown command "frobnicate" (see "mkimg --help")'
"$MKIMG" build --bogus . >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown build option exits 2" "$rc" 2
"$MKIMG" >/dev/null 2>&1; rc=$?
t_eq "no command exits 2" "$rc" 2
t_done
