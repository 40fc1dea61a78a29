#!/usr/bin/env bash
# tests/run.sh - runs every test and ends with one line "N passed, N failed, N skipped".
#
# Unit test binaries (normal and sanitizer builds), conformance tables, fuzz corpus replays,
# CLI integration scripts and the differential suite against Buildah (tests/diff/) all print
# TAP-like "ok"/"not ok" lines; this counts them.
# MKIMG_TEST_STRICT=1 (set in CI) turns skips for missing kernel features into failures.
# Usage: tests/run.sh [PATTERN]   (only test files whose path contains PATTERN)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export MKIMG_CONFORMANCE=${MKIMG_CONFORMANCE:-$(cd "$top/../shared/conformance" 2>/dev/null && pwd)}
export MKIMG_TOP=$top
export MKIMG=$top/mkimg
[ -n "${CI:-}" ] && export MKIMG_TEST_STRICT=${MKIMG_TEST_STRICT:-1}
filter=${1:-}
logdir=$(mktemp -d /tmp/mkimg-tests-XXXXXX)
passed=0 failed=0 skipped=0
failures=()

count() { # name, output file, exit status
    local name=$1 out=$2 rc=$3 p f s
    p=$(grep -cE '^ok [0-9]+' "$out" | head -1)
    s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$out" | head -1)
    f=$(grep -cE '^not ok [0-9]+' "$out" | head -1)
    p=$((p - s))
    if [ "$rc" = 77 ] && [ "$p" = 0 ] && [ "$f" = 0 ]; then
        if [ "${MKIMG_TEST_STRICT:-0}" = 1 ]; then f=1; else s=$((s + 1)); fi
    elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1 # crashed or failed without saying which check
    fi
    if [ "${MKIMG_TEST_STRICT:-0}" = 1 ] && [ "$s" -gt 0 ] && grep -qE '# SKIP.*(kernel|userns|overlay)' "$out"; then
        f=$((f + s)); s=0
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$f" -gt 0 ]; then
        failures+=("$name")
        echo "FAIL $name ($p passed, $f failed, exit $rc)"
        grep -E '^not ok|^#' "$out" | head -40 | sed 's/^/    /'
        tail -n 5 "$out" | sed 's/^/    | /'
    else
        echo "PASS $name ($p passed${s:+, $s skipped})"
    fi
}

run_one() { # name, command...
    local name=$1; shift
    case "$name" in *"$filter"*) ;; *) return ;; esac
    local out="$logdir/$(echo "$name" | tr '/' '_').log"
    "$@" >"$out" 2>&1 </dev/null
    count "$name" "$out" $?
}

for build in build build-san; do
    for t in $(find "$build/tests/unit" -type f -perm -u+x 2>/dev/null | sort); do
        run_one "$t" "$t"
    done
done

for t in tests/integration/t[0-9]*.sh; do
    [ -e "$t" ] || continue
    run_one "$t" bash "$t"
done

# The differential suite: every corpus case built by mkimg and by Buildah, compared (one line
# a case; it skips itself when Buildah is not installed).
run_one tests/diff/run.sh bash tests/diff/run.sh

echo "logs: $logdir"
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
