#!/usr/bin/env bash
# Crash safety: SIGKILL mkimg at random instants during build, load, save and prune; after
# every kill `mkimg fsck` must find nothing wrong, and at the end a build must succeed.
# MKIMG_CRASH_ITERATIONS sets the number of attempts (default 60: about 55 real kills in
# under a minute).
. "$(dirname "$0")/../lib/test-lib.sh"

n=${MKIMG_CRASH_ITERATIONS:-60}
t_import_busybox
mkdir -p "$T/ctx"
cat >"$T/ctx/Dockerfile" <<'DF'
FROM busybox
ARG N=0
RUN echo $N >/n && dd if=/dev/urandom of=/big bs=64k count=16 2>/dev/null
RUN mkdir -p /d && for i in 1 2 3 4 5 6 7 8; do echo $N.$i >/d/$i; done
DF
"$MKIMG" build -q -t t:0 "$T/ctx" >/dev/null
"$MKIMG" save --compression gzip -o "$T/g.tar" t:0
"$MKIMG" save --format docker-archive -o "$T/d.tar" t:0

killed=0 finished=0 unclean=0
# The longest delay before the kill, in ms, per kind of operation; halved each time the
# operation finished first, so that the kills keep landing mid-operation as mkimg gets faster.
declare -A max=([build]=250 [load]=250 [save]=120 [prune]=50 [dload]=150)
for i in $(seq 1 "$n"); do
    case $((i % 4)) in
    0) cmd=(build -q -t "t:$i" --build-arg "N=$i" "$T/ctx") kind=build ;;
    1) cmd=(load -q -i "$T/g.tar") kind=load ;;
    2) cmd=(save --compression zstd --compression-level $((i % 19 + 1)) -o "$T/out.tar" t:0)
       kind=save ;;
    3) "$MKIMG" rmi "t:$((i - 3))" >/dev/null 2>&1
       if [ $((i % 8)) = 3 ]; then cmd=(prune --all); else cmd=(prune); fi
       kind=prune ;;
    esac
    [ $((i % 7)) = 0 ] && cmd=(load -q -i "$T/d.tar") kind=dload
    # Its own process group, so whatever it started dies with it.
    setsid "$MKIMG" "${cmd[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % max[$kind])))"
    # A zombie has finished: only a live process counts as killed mid-operation.
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
    if [ -n "$state" ] && [ "$state" != Z ]; then
        killed=$((killed + 1))
    else
        finished=$((finished + 1))
        [ "${max[$kind]}" -gt 4 ] && max[$kind]=$((max[$kind] / 2))
    fi
    kill -9 -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if ! out=$(timeout 60 "$MKIMG" fsck 2>&1) || [ "$out" != "store is clean" ]; then
        unclean=$((unclean + 1))
        [ "$unclean" -le 3 ] && { echo "# after killing mkimg ${cmd[*]}:"; echo "$out" | sed 's/^/#   /' | head -10; }
        timeout 60 "$MKIMG" fsck --repair >/dev/null 2>&1
    fi
done
echo "# $killed killed mid-operation, $finished finished first"
t_eq "fsck clean after each of $n kills" "$unclean" 0
# Only a sanity check that the test exercised something: how many kills land mid-operation
# depends on the machine's speed, so the bar is low.
t_ok "at least 1/4 of the attempts killed a running operation" test "$killed" -ge $((n / 4))
t_eq "no temp entries survive the next open" "$("$MKIMG" images >/dev/null; ls "$MKIMG_ROOT/tmp" | wc -l)" 0
t_ok "a build after the crashes" timeout 120 "$MKIMG" build -q -t final --build-arg N=final "$T/ctx"
t_ok "a save after the crashes" timeout 60 "$MKIMG" save -o "$T/final.tar" final
t_ok "skopeo reads it" skopeo inspect "oci-archive:$T/final.tar"
t_ok "prune after the crashes" timeout 60 "$MKIMG" prune --all
t_eq "fsck at the end" "$("$MKIMG" fsck 2>&1)" "store is clean"
t_done
