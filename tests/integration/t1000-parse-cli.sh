#!/usr/bin/env bash
# mkimg parse: dumps equal BuildKit's results, error lines and exit codes, warnings, --json,
# --check, stdin. Conformance files are read in place.
. "$(dirname "$0")/../lib/test-lib.sh"
C=${MKIMG_CONFORMANCE:-$MKIMG_TOP/../shared/conformance}/buildkit-parser

for case in docker continueIndent health escape-with-syntax; do
    "$MKIMG" parse --dump "$C/testfiles/$case/Dockerfile" >"$T/out" 2>"$T/err"
    t_eq "dump of testfiles/$case equals result" "$(cmp "$T/out" "$C/testfiles/$case/result" && echo same)" same
done

# Default file is ./Dockerfile, default mode is --dump.
cp "$C/testfiles/json/Dockerfile" "$T/Dockerfile"
(cd "$T" && "$MKIMG" parse >"$T/out")
t_eq "default ./Dockerfile and --dump" "$(cmp "$T/out" "$C/testfiles/json/result" && echo same)" same
"$MKIMG" parse - <"$C/testfiles/flags/Dockerfile" >"$T/out"
t_eq "stdin with -" "$(cmp "$T/out" "$C/testfiles/flags/result" && echo same)" same

# A parse error: one stderr line with the location, exit 1, nothing on stdout.
printf 'FROM alpine\nRUN true\nENV a=b c\n' >"$T/bad"
(cd "$T" && "$MKIMG" parse -f bad >"$T/out" 2>"$T/err"); rc=$?
t_eq "parse error exits 1" "$rc" 1
t_eq "parse error message" "$(cat "$T/err")" \
    "mkimg: bad:3: Syntax error - can't find = in \"c\". Must be of the form: name=value"
t_eq "nothing on stdout on error" "$(wc -c <"$T/out")" 0
printf 'FROM a\nRUN <<EOF\nnever closed\n' | "$MKIMG" parse - >/dev/null 2>"$T/err"; rc=$?
t_eq "unterminated heredoc from stdin" "$rc:$(cat "$T/err")" "1:mkimg: Dockerfile:2: unterminated heredoc"

# Warnings go to stderr, the dump still succeeds.
"$MKIMG" parse "$C/vectors/empty-continuation.Dockerfile" >"$T/out" 2>"$T/err"; rc=$?
t_eq "warnings do not fail" "$rc" 0
t_grep "warning line" '^mkimg: warning: .*empty-continuation.Dockerfile:11: Empty continuation line found in: RUN something' "$T/err"

# --json is valid JSON with the instructions grouped by stage.
"$MKIMG" parse --json "$C/generated/ok/from-flags-stages/Dockerfile" >"$T/json"; rc=$?
t_eq "--json exits 0" "$rc" 0
t_ok "--json is valid JSON" python3 -m json.tool "$T/json"
t_eq "--json stage count" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["stages"]))' "$T/json")" \
    "$(grep -ci '^from' "$C/generated/ok/from-flags-stages/Dockerfile")"
"$MKIMG" parse --json "$C/vectors/heredoc-extract.Dockerfile" >"$T/json"
t_eq "--json heredoc content" "$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
ins=[i for s in d["stages"] for i in s["instructions"]]
print(json.dumps(ins[16]["heredocs"][1]))' "$T/json")" \
    '{"name": "FILE2", "content": "content 2\n", "expand": true, "chomp": false, "fd": -1}'

# --check runs the build-time instruction checks; plain parse accepts the same file.
printf 'FROM alpine\nRUNN echo hi\n' >"$T/typo"
t_ok "parse alone accepts an unknown instruction" "$MKIMG" parse "$T/typo"
"$MKIMG" parse --check -f "$T/typo" >/dev/null 2>"$T/err"; rc=$?
t_eq "--check rejects it" "$rc:$(cat "$T/err")" \
    "1:mkimg: $T/typo:2: unknown instruction \"RUNN\" (did you mean \"RUN\"?)"

# Usage errors exit 2; a missing file exits 1.
"$MKIMG" parse --bogus 2>"$T/err"; rc=$?
t_eq "unknown option exits 2" "$rc" 2
"$MKIMG" parse "$T/nonexistent" 2>"$T/err"; rc=$?
t_eq "missing file" "$rc:$(cat "$T/err")" "1:mkimg: opening \"$T/nonexistent\": No such file or directory"
t_done
