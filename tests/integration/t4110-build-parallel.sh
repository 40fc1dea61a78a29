#!/usr/bin/env bash
# --jobs: independent stages are built at the same time (each stage's RUN waits for the other
# through a shared cache mount, so the build only succeeds when they overlap), the result is
# the image a sequential build gives, a failing stage stops the build cleanly, and so does
# Ctrl-C.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/c; mkdir -p "$c"
# Each of a and b marks itself in the shared cache and waits (up to 15 s) for the other.
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS a
ARG RUNID
RUN --mount=type=cache,target=/sync,id=sync sh -c 'echo a-start; touch /sync/a-$RUNID; i=0; while [ ! -e /sync/b-$RUNID ]; do i=$((i+1)); [ $i -gt 150 ] && exit 7; sleep 0.1; done; echo a > /a'
FROM busybox AS b
ARG RUNID
RUN --mount=type=cache,target=/sync,id=sync sh -c 'echo b-start; touch /sync/b-$RUNID; i=0; while [ ! -e /sync/a-$RUNID ]; do i=$((i+1)); [ $i -gt 150 ] && exit 7; sleep 0.1; done; echo b > /b'
FROM busybox AS unused
RUN echo unused-ran
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
RUN cat /a /b > /ab
DF
t_ok "two stages that need each other running build with --jobs 2" \
    "$MKIMG" build --progress=plain -j 2 --build-arg RUNID=1 -t par "$c"
"$MKIMG" build --progress=plain -j 2 --no-cache --build-arg RUNID=2 -t par "$c" >/dev/null 2>"$T/log"
t_eq "--no-cache too" "$?" 0
t_eq "each RUN's output shown once" "$(grep -cE '^#[0-9]+ [0-9.]+ a-start$' "$T/log"):$(grep -cE '^#[0-9]+ [0-9.]+ b-start$' "$T/log")" "1:1"
t_ok "a stage the target does not need does not run" bash -c "! grep -q unused-ran '$T/log'"
t_grep "result lines of parallel stages name their step" '^#3 => done [0-9.]+s$' "$T/log"
"$MKIMG" run par cat /ab >"$T/ab"
t_eq "the image holds both stages' files" "$(cat "$T/ab")" "$(printf 'a\nb')"
id=$("$MKIMG" inspect par | jq -r '.[0].Id')
"$MKIMG" build --progress=plain -j 1 --build-arg RUNID=2 -t par "$c" >"$T/id" 2>"$T/log1"
t_eq "a sequential rebuild is all cached" "$(grep -c '=> CACHED' "$T/log1")" 5
t_eq "... and gives the same image" "$(cat "$T/id")" "$id"
"$MKIMG" build -q -j 1 --no-cache --build-arg RUNID=3 -t seq "$c" >/dev/null 2>&1
t_eq "sequentially (-j 1) the same Dockerfile cannot build (the test can fail)" "$?" 1

# By default every ready stage runs, not one per core: cores + 1 stages that each wait for all
# the others (a barrier in a shared cache mount) build only when all of them run at once.
n=$(($(nproc) + 1))
{
    for i in $(seq 1 "$n"); do
        echo "FROM busybox AS s$i"
        echo "ARG RUNID"
        echo "RUN --mount=type=cache,target=/sync,id=barrier sh -c 'touch /sync/\$RUNID-$i; j=0; while [ \$(ls /sync | grep -c \"^\$RUNID-\") -lt $n ]; do j=\$((j+1)); [ \$j -gt 150 ] && exit 7; sleep 0.1; done; echo $i > /s'"
    done
    echo "FROM busybox"
    for i in $(seq 1 "$n"); do echo "COPY --from=s$i /s /s$i"; done
} >"$c/Dockerfile.barrier"
t_ok "by default, $n waiting stages run at once on $(nproc) cores" \
    "$MKIMG" build -q --no-cache --build-arg RUNID=d1 -f "$c/Dockerfile.barrier" "$c"
"$MKIMG" build -q --no-cache -j "$(nproc)" --build-arg RUNID=d2 -f "$c/Dockerfile.barrier" "$c" >/dev/null 2>&1
rc=$?
t_eq "... which -j $(nproc) cannot (the check can fail)" "$rc" 1

# Cache mounts under --jobs: sharing=locked makes the second user wait (each stage reads back
# what it wrote although both write the same file), private gives the second its own
# instance (the same), shared lets them use it at once (each waits for the other's mark).
for mode in locked private; do
    cat >"$c/Dockerfile.$mode" <<DF
FROM busybox AS a
ARG R
RUN --mount=type=cache,target=/c,id=sh-$mode,sharing=$mode sh -c 'echo \$R-a > /c/v; sleep 1; cat /c/v > /seen'
FROM busybox AS b
ARG R
RUN --mount=type=cache,target=/c,id=sh-$mode,sharing=$mode sh -c 'echo \$R-b > /c/v; sleep 1; cat /c/v > /seen'
FROM busybox
COPY --from=a /seen /a
COPY --from=b /seen /b
DF
    t_ok "sharing=$mode builds with --jobs 2" "$MKIMG" build -q -j 2 --build-arg R=$mode -t sh-$mode -f "$c/Dockerfile.$mode" "$c"
    t_eq "sharing=$mode: each stage sees its own write" \
        "$("$MKIMG" run sh-$mode cat /a /b | tr '\n' ' ')" "$mode-a $mode-b "
done
sed -e 's/id=sync/id=sync-shared,sharing=shared/' "$c/Dockerfile" >"$c/Dockerfile.shared"
t_ok "sharing=shared: two stages use the cache at once" \
    "$MKIMG" build -q -j 2 --build-arg RUNID=s -f "$c/Dockerfile.shared" "$c"
sed 's/sharing=locked/sharing=sometimes/' "$c/Dockerfile.locked" >"$c/Dockerfile.bad"
"$MKIMG" build -q -j 1 -f "$c/Dockerfile.bad" "$c" >/dev/null 2>"$T/err"
t_grep "an unknown sharing mode is a clear error" 'Dockerfile.bad:3: --mount sharing=sometimes: unknown mode' "$T/err"

# A failing stage: one clear error, the other stage stopped, nothing tagged or left behind.
# The sleeping RUNs carry a mark of this run, so that pgrep counts no other test's sleeps.
mark=t4110-$$-
cat >"$c/Dockerfile.fail" <<DF
FROM busybox AS a
RUN sleep 0.3; exit 3
FROM busybox AS b
RUN --mount=type=cache,target=/c,id=stopcheck sh -c 'sleep 20; touch /c/finished; : ${mark}b'
FROM busybox
COPY --from=a / /
COPY --from=b / /
DF
"$MKIMG" build -j 2 -t failed -f "$c/Dockerfile.fail" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a failing stage fails the build" "$rc" 1
t_grep "... naming its line" '^mkimg: .*Dockerfile.fail:2: RUN "sleep 0.3; exit 3": exit status 3$' "$T/err"
t_eq "... and stops the other stage (it never finished)" \
    "$(find "$MKIMG_ROOT/cache/mounts" -name finished | wc -l)" 0
sleepers() { pgrep -fc -- "${mark}[ab]"; }
running() { pgrep -f -- "$mark$1" >/dev/null; }
t_fails "nothing tagged" "$MKIMG" inspect failed
t_eq "no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_eq "no stage process left" "$(sleepers)" 0

# Ctrl-C while two stages run.
sed "s/sleep 0.3; exit 3/sleep 20; : ${mark}a/" "$c/Dockerfile.fail" >"$c/Dockerfile.int"
"$MKIMG" build -j 2 -t intr -f "$c/Dockerfile.int" "$c" >/dev/null 2>"$T/err" &
pid=$!
for _ in $(seq 100); do running a && running b && break; sleep 0.1; done
t_ok "SIGINT: sent while both stages run" eval 'running a && running b'
kill -INT $pid
wait $pid; rc=$?
t_eq "SIGINT: exit 130" "$rc" 130
sleep 0.3
t_eq "SIGINT: no stage process left" "$(sleepers)" 0
t_eq "SIGINT: no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_fails "SIGINT: nothing tagged" "$MKIMG" inspect intr
t_ok "fsck is clean" "$MKIMG" fsck
t_done
