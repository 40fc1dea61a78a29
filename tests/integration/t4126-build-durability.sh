#!/usr/bin/env bash
# Durability at the cost of a few syncs per build, not per step: a build opens a window of
# deferred durability (ROOT/unsynced/<marker>, on disk first; t0275 shows what an open does
# with a marker left behind), names its layers before they are on disk, and syncs the file
# system once before index.json names the image and once before the marker goes. Directory
# entries, step records and the container's /etc/hosts are not fsynced one by one; the
# container's root overlay is volatile. So the number of fsyncs of a build does not grow with
# its steps, and the order that keeps a tagged image whole after a power cut holds (checked
# on the trace).
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
t_import_busybox
steps() { # DIR N: N rounds of RUN, WORKDIR, COPY (3N layer steps) and an ENV
    mkdir -p "$1"
    echo FROM busybox >"$1/Dockerfile"
    for i in $(seq 1 "$2"); do
        echo "f$i" >"$1/f$i"
        printf 'ENV S%s=%s\nRUN echo $S%s >/s%s\nWORKDIR /w%s\nCOPY f%s ./\n' \
            "$i" "$i" "$i" "$i" "$i" "$i" >>"$1/Dockerfile"
    done
}
steps "$T/small" 1
steps "$T/big" 6
trace() { # NAME CTX: builds CTX tagged NAME under strace into $T/NAME.trace
    strace -f -y -qq -e trace=fsync,fdatasync,syncfs,write,rename,renameat,renameat2,unlinkat \
        -o "$T/$1.trace" "$MKIMG" build -q -t "$1" "$2" >/dev/null
}
t_ok "a build of 3 layer steps under strace" trace small "$T/small"
t_ok "a build of 18 layer steps under strace" trace big "$T/big"
count() { grep -cE "^[0-9]+ +$2\(" "$T/$1.trace" || true; }
fs=$(count small 'f(data)?sync') fb=$(count big 'f(data)?sync')
t_ok "the fsyncs of a build do not grow with its steps ($fs for 3 layer steps, $fb for 18)" \
    test "$fb" -le "$fs"
ss=$(count small syncfs) sb=$(count big syncfs)
t_ok "nor do its syncfs ($ss for 3 layer steps, $sb for 18)" test "$sb" -le "$ss"

# The order, on the trace of the larger build: a temp file renamed into blobs/sha256/ was last
# written before a sync (syncfs, or an fsync of that file), or else the marker was on disk
# (its fsync and its directory's) before; then a syncfs comes after it before index.json is
# replaced and before the marker is removed, and every name in blobs/sha256/ is synced
# (syncfs, or an fsync of the directory) before index.json is replaced.
check_order() {
    awk '
    { line = $0; sub(/^[0-9]+ +/, "", line) }
    line ~ /^write\(/ { match(line, /<[^>]*>/); last_write[substr(line, RSTART + 1, RLENGTH - 2)] = NR }
    line ~ /^syncfs\(/ { last_syncfs = NR }
    line ~ /^f(data)?sync\(/ {
        match(line, /<[^>]*>/); p = substr(line, RSTART + 1, RLENGTH - 2); synced[p] = NR
        if (p ~ /\/blobs\/sha256$/) dir_synced = NR
        if (p ~ /\/unsynced\/[^\/]+$/) marker_synced = NR
        if (p ~ /\/unsynced$/ && marker_synced) window = NR
    }
    line ~ /^rename/ && line ~ /"blobs\/sha256\// {
        n_blobs++
        match(line, /"[^"]*"/); src = substr(line, RSTART + 1, RLENGTH - 2)
        w = last_write[src] + 0
        if (!(last_syncfs > w || synced[src] > w)) {
            if (!window) { print "not on disk before its name: " line; bad++ }
            last_unsynced = NR
        }
        last_blob = NR
    }
    line ~ /^rename/ && line ~ /"index\.json"/ {
        n_index++
        if ((dir_synced < last_blob && last_syncfs < last_blob) || last_syncfs < last_unsynced) {
            print "index.json before the blobs were synced: " line; bad++
        }
    }
    line ~ /^unlinkat\(/ && line ~ /"unsynced\// {
        n_end++
        if (last_syncfs < last_unsynced) { print "the window closed before a syncfs: " line; bad++ }
    }
    END {
        if (n_blobs < 10 || n_index < 1 || !window || n_end < 1) {
            print "vacuous: " n_blobs " blob renames, " n_index " index writes, window " window ", " n_end " ends"; bad++
        }
        exit bad > 0
    }' "$T/big.trace"
}
t_ok "blobs are on disk before their names, and their names before the tag" check_order
# The container's root overlay is volatile: its unmount would otherwise sync the store's file
# system once more per step (the step's commit syncs it anyway). A cache mount is not (a
# volatile mount leaves its workdir unfit for the next one): a second build uses it again.
mkdir -p "$T/vol"
printf 'FROM busybox\nARG N\nRUN --mount=type=cache,target=/c echo $N >>/c/n && cat /c/n >/n && grep " / / " /proc/self/mountinfo >/root.mi\n' >"$T/vol/Dockerfile"
t_ok "a RUN with a cache mount" "$MKIMG" build -q -t vol --build-arg N=1 "$T/vol"
t_ok "again, the cache mount reused" "$MKIMG" build -q -t vol --build-arg N=2 "$T/vol"
t_grep "the root overlay of a RUN is volatile" "[,-]( |fsync=)?volatile(,|\$)" \
    <("$MKIMG" run --rm vol cat /root.mi)
t_eq "the cache mount kept what the first build wrote" "$("$MKIMG" run --rm vol cat /n)" "$(printf '1\n2')"
t_ok "the image is whole" "$MKIMG" fsck
t_eq "and runs" "$("$MKIMG" run --rm big cat /s6 /w6/f6 2>&1)" "$(printf '6\nf6')"
# A rebuild with nothing changed writes nothing: no window is opened, the tag names the same
# manifest, so no sync at all.
t_ok "a rebuild with nothing changed under strace" trace big "$T/big"
t_eq "... syncs nothing" "$(count big 'f(data)?sync') $(count big syncfs)" "0 0"
t_eq "... and leaves no marker" "$(ls "$MKIMG_ROOT/unsynced" 2>/dev/null)" ""
# The same with independent stages built by --jobs helper processes: a cold build leaves no
# marker (a helper closes its own window before it reports) and a rebuild syncs nothing, with
# no helper (a stage of cache hits is built in the build's process), or with one (stage b's
# ADD of a word with a variable is left to a helper: it could name a URL) whose steps are all
# cache hits.
mkdir -p "$T/par"
echo b >"$T/par/b"
printf 'FROM busybox AS a\nRUN echo a >/a\nFROM busybox AS b\nARG F=b\nADD $F /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n' >"$T/par/Dockerfile"
t_ok "a build of two stages in helpers" "$MKIMG" build -q --jobs 2 -t par "$T/par"
t_eq "... leaves no marker" "$(ls "$MKIMG_ROOT/unsynced" 2>/dev/null)" ""
t_eq "... and runs" "$("$MKIMG" run --rm par cat /a /b 2>&1)" "$(printf 'a\nb')"
trace_par() {
    strace -f -y -qq -e trace=fsync,fdatasync,syncfs,clone,clone3,fork -o "$T/par.trace" \
        "$MKIMG" build -q --jobs 2 -t par "$T/par" >/dev/null
}
t_ok "its rebuild under strace" trace_par
t_eq "... forks one helper (stage b's)" \
    "$(grep -cE "clone\(child_stack=NULL, flags=[^)]*SIGCHLD" "$T/par.trace")" 1
t_eq "... and syncs nothing" "$(count par 'f(data)?sync') $(count par syncfs)" "0 0"
t_done
