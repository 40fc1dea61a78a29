#!/usr/bin/env bash
# The build epoch's values: SOURCE_DATE_EPOCH, --timestamp and --build-arg SOURCE_DATE_EPOCH are
# read by one parser with one bound (0 to 253402300799, 9999-12-31T23:59:59Z). A value that is
# not one fails before any work with one line naming where it came from, as buildx refuses an
# invalid SOURCE_DATE_EPOCH; an empty one is unset. The epoch also clamps `-o type=tar`.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c"
printf 'FROM busybox\nRUN echo x >/made\n' >"$c/Dockerfile"
created() { "$MKIMG" inspect "$1" | jq -r '.[0].Created'; }
bound="not a number of seconds since 1970 (0 to 253402300799)"

for v in abc -5 1e9 ' 1' 253402300800 99999999999999999999; do
    SOURCE_DATE_EPOCH=$v "$MKIMG" build -q -t bad "$c" >"$T/out" 2>"$T/err"; rc=$?
    t_eq "SOURCE_DATE_EPOCH=\"$v\": usage error before building" "$rc:$(cat "$T/out")" 2:
    t_eq "SOURCE_DATE_EPOCH=\"$v\": one line saying so" "$(cat "$T/err")" \
        "mkimg: SOURCE_DATE_EPOCH=$v: $bound"
done
t_fails "no image was made by the refused builds" "$MKIMG" inspect bad

"$MKIMG" build -q --build-arg SOURCE_DATE_EPOCH=soon "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "--build-arg SOURCE_DATE_EPOCH=soon: usage error" "$rc" 2
t_eq "... named as the build-arg" "$(cat "$T/err")" \
    "mkimg: --build-arg SOURCE_DATE_EPOCH=soon: $bound"
"$MKIMG" build -q --timestamp 253402300800 "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "--timestamp past the bound: usage error" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: --timestamp takes seconds since the epoch, not "253402300800"'

t_ok "the bound itself is an epoch" \
    env SOURCE_DATE_EPOCH=253402300799 "$MKIMG" build -q -t last "$c"
t_eq "... written as the last second of 9999" "$(created last)" "9999-12-31T23:59:59Z"
t_ok "an empty SOURCE_DATE_EPOCH is unset" env SOURCE_DATE_EPOCH= "$MKIMG" build -q -t empty "$c"
t_ok "... and the image has the time of the build" \
    test "$(created empty | cut -c1-4)" = "$(date -u +%Y)"
t_ok "--timestamp wins over a bad SOURCE_DATE_EPOCH (which is then not read)" \
    env SOURCE_DATE_EPOCH=abc "$MKIMG" build -q -t ts --timestamp 86400 "$c"
t_eq "... the image has the --timestamp time" "$(created ts)" "1970-01-02T00:00:00Z"
t_ok "--build-arg SOURCE_DATE_EPOCH wins over --timestamp" \
    "$MKIMG" build -q -t ba --timestamp 86400 --build-arg SOURCE_DATE_EPOCH=172800 "$c"
t_eq "... the image has the build-arg's time" "$(created ba)" "1970-01-03T00:00:00Z"

# -o type=tar: no mtime after the epoch, also when the epoch came as a build-arg.
t_ok "build -o type=tar with --build-arg SOURCE_DATE_EPOCH=1000" \
    "$MKIMG" build -q --build-arg SOURCE_DATE_EPOCH=1000 -o "type=tar,dest=$T/root.tar" "$c"
newest=$(python3 -c 'import sys, tarfile; print(max(m.mtime for m in tarfile.open(sys.argv[1])))' "$T/root.tar")
t_eq "the exported tree's newest mtime is the epoch" "$newest" 1000

# import reads SOURCE_DATE_EPOCH the same way.
SOURCE_DATE_EPOCH=soon "$MKIMG" import "$T/bbroot" imp >/dev/null 2>"$T/err"; rc=$?
t_eq "import with a bad SOURCE_DATE_EPOCH: usage error" "$rc:$(cat "$T/err")" \
    "2:mkimg: SOURCE_DATE_EPOCH=soon: $bound"
t_done
