#!/usr/bin/env bash
# A build names its layers before they are on disk (one syncfs before the tag instead of one
# per step), inside a window marked by ROOT/unsynced/<name> (the boot id, flock()ed by the
# build). The next open settles a marker whose owner is gone: killed in this boot, its writes
# were whole in the page cache and stay (synced, marker removed); from another boot (a power
# cut), whatever changed since the marker was made and no tag keeps alive goes, and tagged
# images stay whole. A power cut is simulated by rewriting the boot id of a killed build's
# marker.
. "$(dirname "$0")/../lib/test-lib.sh"

t_import_busybox
mkdir -p "$T/a" "$T/b"
printf 'FROM busybox\nRUN echo a >/a\n' >"$T/a/Dockerfile"
printf 'FROM busybox\nRUN echo 1 >/one\nRUN echo 2 >/two\nRUN sleep 60\n' >"$T/b/Dockerfile"
t_ok "an image built and tagged" "$MKIMG" build -q -t a "$T/a"
t_eq "no marker after a build" "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" 0

# Starts the build of b and kills it (its whole process group) once two steps are stored.
kill_b() {
    setsid "$MKIMG" build -q -t b "$T/b" >/dev/null 2>&1 &
    local pid=$! i
    for i in $(seq 1 200); do
        [ "$(ls "$MKIMG_ROOT/cache/steps" 2>/dev/null | wc -l)" -ge "$1" ] && break
        sleep 0.1
    done
    t_eq "while the build runs, its marker is there" "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" 1
    "$MKIMG" images >/dev/null
    t_eq "another open leaves a live build's marker alone" "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" 1
    kill -9 -- "-$pid"
    wait "$pid" 2>/dev/null
    # The build's children (the RUN's sandbox) die a moment after it and hold its flock()
    # until they do: on a loaded machine the next open could still find the window live.
    for i in $(seq 1 100); do
        flock -n "$(ls -d "$MKIMG_ROOT"/unsynced/* | head -n 1)" true && break
        sleep 0.1
    done
}
cached() { # the lines of a build of b's first two steps that were cache hits
    printf 'FROM busybox\nRUN echo 1 >/one\nRUN echo 2 >/two\n' >"$T/b2/Dockerfile"
    "$MKIMG" build --explain-cache -t b2 "$T/b2" 2>&1 | grep -c 'CACHED' || true
}
mkdir -p "$T/b2"

# Killed in this boot: nothing is lost.
kill_b 3
t_ok "a killed build leaves its marker" test "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" = 1
"$MKIMG" images >/dev/null
t_eq "the next open removes it" "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" 0
t_eq "what the killed build stored is kept" "$(cached)" 2
t_eq "fsck" "$("$MKIMG" fsck 2>&1)" "store is clean"
"$MKIMG" rmi b2 >/dev/null

# A power cut: the marker says another boot. (New steps: a build that has written nothing
# yet has no window open, so no marker.)
printf 'FROM busybox\nRUN echo 3 >/three\nRUN echo 4 >/four\nRUN sleep 60\n' >"$T/b/Dockerfile"
kill_b $(($(ls "$MKIMG_ROOT/cache/steps" | wc -l) + 2))
m=$(ls "$MKIMG_ROOT/unsynced")
steps_before=$(ls "$MKIMG_ROOT/cache/steps" | wc -l)
t_ok "the killed build had stored its steps ($steps_before records)" test "$steps_before" -ge 3
echo 00000000-0000-0000-0000-000000000000 >"$MKIMG_ROOT/unsynced/$m"
t_ok "the store opens after a power cut" "$MKIMG" images
t_eq "the marker is gone" "$(ls "$MKIMG_ROOT/unsynced" | wc -l)" 0
t_eq "the records written since the window began are gone ($steps_before before)" \
    "$(ls "$MKIMG_ROOT/cache/steps" | wc -l)" 0
t_eq "so is every layer no tag keeps" "$(ls "$MKIMG_ROOT/snapshots" | wc -l)" 2
t_eq "the tagged image is whole" "$("$MKIMG" run --rm a cat /a 2>&1)" a
t_eq "fsck after the recovery" "$("$MKIMG" fsck 2>&1)" "store is clean"
t_eq "the steps are built again" "$(cached)" 0
t_done
