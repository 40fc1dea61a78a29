#!/usr/bin/env bash
# The commit of a layer of many files starts their write-back while it writes the tar (issue
# 19: a cold COPY of 20,000 small files spent as long in the build's final syncfs as in its
# tar, one core idle): once it has read 1,024 files, one syncfs runs on a thread of the
# commit, before the snapshot is renamed in. A layer of a few files starts none (a build of
# many small steps would pay a journal commit per step). The commit hands it to the build's
# window of deferred durability, which waits for it before its own syncfs. strace shows the
# order of syncfs and the snapshot renames; the image holds the files either way.
. "$(dirname "$0")/../lib/test-lib.sh"

t_need strace
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx/many/a" "$ctx/many/b" "$ctx/few"
for i in $(seq 1 600); do
    echo "a $i" >"$ctx/many/a/f$i"
    echo "b $i" >"$ctx/many/b/f$i"
done
for i in 1 2 3; do echo "few $i" >"$ctx/few/g$i"; done
printf 'FROM busybox\nCOPY few /few/\nCOPY many /many/\nRUN ls /many/a | wc -l >/count\n' \
    >"$ctx/Dockerfile"
t_ok "builds" strace -f -e trace=syncfs,renameat2 -o "$T/trace" "$MKIMG" build -q -t se "$ctx"

# The syncfs calls made before each snapshot rename, one count per rename, in order.
syncs_before_renames() {
    awk '/syncfs\(/ { n++ } /renameat2\(.*"snapshots\// { print n + 0; n = 0 }' "$T/trace" |
        paste -sd ' '
}
t_eq "one syncfs before the snapshot of many files, none before the others" \
    "$(syncs_before_renames)" "0 1 0"
main=$(grep -m1 'renameat2(.*"snapshots/' "$T/trace" | awk '{print $1}')
t_ok "that syncfs was another thread's than the commit's ($main)" \
    test "$(grep -m1 'syncfs(' "$T/trace" | awk '{print $1}')" != "$main"
# The commit does not wait for it (the RUN step may start meanwhile); the build does, before
# its own syncfs, which comes before the tag.
early_end=$(grep -nE "^[0-9]+ +(syncfs\(.*\) += |<\.\.\. syncfs resumed>)" "$T/trace" |
    awk -v m="$main" -F'[: ]+' '$2 != m { print $1; exit }')
main_sync=$(grep -nE "^$main +syncfs\(" "$T/trace" | tail -n 1 | cut -d: -f1)
t_ok "the build waited for it before its own syncfs (lines $early_end, $main_sync)" \
    test -n "$early_end" -a -n "$main_sync" -a "${early_end:-0}" -lt "${main_sync:-0}"
umoci unpack --image "$MKIMG_ROOT:se:latest" "$T/out" >/dev/null 2>&1
t_eq "the image has the files" "$(cat "$T/out/rootfs/count")" 600
t_eq "and the other directory" "$(ls "$T/out/rootfs/many/b" | wc -l)" 600
t_eq "and the few" "$(cat "$T/out/rootfs/few/g3")" "few 3"
t_done
