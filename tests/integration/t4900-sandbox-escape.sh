#!/usr/bin/env bash
# The escape suite: a RUN step (and `mkimg run`) attacks its sandbox, built as root and as an
# unprivileged user, and nothing on the host changes. One check per attack: the probe
# (tests/data/sandbox/probe.c, built static here) prints "blocked NAME" or "ESCAPE NAME" for
# each attempt, so a check needs the line that proves the attempt ran. Then: the capability
# sets, runc's masked and read-only paths, the read-only binds that must stay read-only, the
# context-swap race (a context directory exchanged with a symlink to a host directory while
# steps bind it), --security=insecure behind --allow, and the privileged things builds need
# (users, chown, su, cache mounts) still working.
. "$(dirname "$0")/../lib/test-lib.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root (runs the suite as root and as a test user)"; t_done; exit; fi
if ! cc -static -O2 -o "$T/probe" "$MKIMG_TOP/tests/data/sandbox/probe.c" 2>"$T/cc.err"; then
    t_fail "building the probe"; sed 's/^/# /' "$T/cc.err"; t_done; exit
fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
core_pattern=$(cat /proc/sys/kernel/core_pattern)

# Attacks from a RUN with the context bound at /ctx and a secret at /run/secrets/s. Paths
# this kernel lacks are left out (an attempt on a missing file proves nothing). Those that
# would hide the others' effect when they work (unmounts, a mount on /tmp, pivot_root) last.
attacks=(remount:/ctx create:/ctx/pwned remount:/run/secrets/s remount:/etc/resolv.conf
    remount:/proc/sys sysctl:/proc/sys/kernel/core_pattern remount:/sys)
for f in /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/uevent_helper /proc/sysrq-trigger; do
    [ -e "$f" ] && attacks+=("openw:$f")
done
for f in /proc/timer_list /proc/sched_debug /proc/kcore; do
    [ -e "$f" ] && attacks+=("read:$f")
done
attacks+=(open_tree fsopen unshare_user unshare_mnt clone_user setns keyctl add_key bpf
    perf_event_open ptrace_init proc1_root kexec init_module sethostname umount:/ctx
    umount:/proc/sys mount pivot_root)
run_attacks=() # `mkimg run` has no context or secret mounts
for a in "${attacks[@]}"; do case $a in *:/ctx* | *secrets*) ;; *) run_attacks+=("$a") ;; esac; done

# check_log MODE WHAT LOG ATTACK...: one "blocked" line per attack, no ESCAPE line.
check_log() {
    local mode=$1 what=$2 log=$3 a missing=
    shift 3
    for a in "$@"; do
        if grep -qF "blocked $a (" "$log"; then t_pass "$mode: $what: $a blocked"; else
            t_fail "$mode: $what: $a blocked"
            grep -F " $a" "$log" | head -3 | sed 's/^/#   /'
            missing=1
        fi
    done
    [ -n "$missing" ] && tail -5 "$log" | sed 's/^/#   | /'
    t_eq "$mode: $what: no attack worked" "$(grep -c 'ESCAPE' "$log")" 0
}

# scenario MODE DIR RUNNER...: RUNNER runs a command line in DIR as root or as the user.
scenario() {
    local mode=$1 d=$2 a
    shift 2
    local run=("$@")
    mkdir -p "$d/ctx" "$d/outside" "$d/race"
    cp "$T/probe" "$d/ctx/probe"
    cp "$MKIMG" "$d/mkimg"
    cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$d/"
    echo "s3cr3t-value" >"$d/secret"
    echo "context file" >"$d/ctx/file"
    cat >"$d/ctx/Dockerfile" <<DF
FROM busybox
COPY probe /probe
RUN --mount=type=bind,target=/ctx --mount=type=secret,id=s,target=/run/secrets/s /probe ${attacks[*]}
RUN grep -E '^Cap(Bnd|Eff)' /proc/self/status; echo firmware=\$(ls -A /sys/firmware 2>/dev/null | wc -l)
RUN echo 'u1:x:1234:1234::/tmp:/bin/sh' >>/etc/passwd && mkdir /data && chown 1234:1234 /data && \
    su u1 -c 'touch /data/by-u1' && echo owner=\$(stat -c %u /data/by-u1)
RUN --mount=type=cache,target=/cache touch /cache/x && ls /cache
DF
    mkdir -p "$d/ins"
    printf 'FROM busybox\nRUN --security=insecure grep CapEff /proc/self/status\n' >"$d/ins/Dockerfile"
    # The race: race/sw is a directory, race/swl a symlink to a host directory outside the
    # context holding a 0600 file; a loop exchanges the two names while 20 steps bind sw.
    echo TOPSECRET-host-file >"$d/outside/leak"
    chmod 600 "$d/outside/leak"
    mkdir -p "$d/race/sw" "$d/race/$d/outside"
    echo "inside the context" >"$d/race/sw/leak"
    ln -s "$d/outside" "$d/race/swl"
    # Resolved inside the context, the symlink leads to this mirror: every step can run.
    echo "inside the context too" >"$d/race/$d/outside/leak"
    {
        echo "FROM busybox"
        for i in $(seq 1 20); do
            echo "RUN --mount=type=bind,source=sw,target=/m cat /m/leak 2>/dev/null; echo ran-$i"
        done
    } >"$d/race/Dockerfile"
    [ "$mode" = rootless ] && chown -R "$user" "$d"

    t_ok "$mode: base image" "${run[@]}" "./busybox-rootfs.sh rootfs >/dev/null && ./mkimg import rootfs busybox:latest"
    "${run[@]}" "./mkimg build --no-cache --progress=plain --secret id=s,src=$d/secret -t esc ctx" >"$d/build.log" 2>&1
    t_eq "$mode: the attack build succeeds" "$?" 0
    check_log "$mode" RUN "$d/build.log" "${attacks[@]}"
    t_eq "$mode: RUN as root has Docker's bounding set" \
        "$(grep -o 'CapBnd:.*' "$d/build.log" | tr -d '\t ')" "CapBnd:00000000a80425fb"
    t_eq "$mode: RUN as root has Docker's effective set" \
        "$(grep -o 'CapEff:.*' "$d/build.log" | tr -d '\t ')" "CapEff:00000000a80425fb"
    t_grep "$mode: /sys/firmware is masked" 'firmware=0$' "$d/build.log"
    t_grep "$mode: users, chown and su work in RUN" 'owner=1234$' "$d/build.log"
    t_grep "$mode: cache mounts work in RUN" '^#[0-9]+ [0-9.]+ x$' "$d/build.log"
    t_eq "$mode: the host's core_pattern is unchanged" "$(cat /proc/sys/kernel/core_pattern)" "$core_pattern"
    t_eq "$mode: nothing was written to the context" \
        "$(ls -A "$d/ctx" | sort | tr '\n' ' ')" "Dockerfile file probe "
    t_eq "$mode: the secret is unchanged" "$(cat "$d/secret")" "s3cr3t-value"
    t_eq "$mode: no file appeared in /sys" "$(ls -A /sys | grep -c mkimg-escape)" 0

    "${run[@]}" "./mkimg run esc /probe ${run_attacks[*]}" >"$d/run.log" 2>&1
    check_log "$mode" "mkimg run" "$d/run.log" "${run_attacks[@]}"
    "${run[@]}" "./mkimg run esc grep CapEff /proc/self/status" >"$d/run-caps.log" 2>&1
    t_eq "$mode: mkimg run has Docker's effective set" "$(tr -d '\t ' <"$d/run-caps.log")" \
        "CapEff:00000000a80425fb"
    "${run[@]}" "./mkimg run esc su u1 -c 'grep CapEff /proc/self/status'" >"$d/run-u.log" 2>&1
    t_eq "$mode: a non-root user has no effective capabilities" \
        "$(tr -d '\t ' <"$d/run-u.log")" "CapEff:0000000000000000"

    "${run[@]}" "./mkimg build --no-cache --progress=plain -t ins ins" >"$d/ins.log" 2>&1
    t_eq "$mode: --security=insecure without --allow fails" "$?" 1
    t_grep "$mode: ... and says which entitlement" \
        '^mkimg: .*Dockerfile:2: RUN --security=insecure needs the entitlement: build with --allow security.insecure$' "$d/ins.log"
    "${run[@]}" "./mkimg build --no-cache --progress=plain --allow security.insecure -t ins ins" >"$d/ins2.log" 2>&1
    t_eq "$mode: --allow security.insecure builds" "$?" 0
    local full
    full=$(grep -o 'CapEff:.*' "$d/ins2.log" | tr -d '\t ')
    t_ok "$mode: ... with more than Docker's capabilities" test -n "$full" -a "$full" != "CapEff:00000000a80425fb"

    # The swap race, run while the builds go.
    local swapper=(python3 -c '
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1].encode()
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
end = time.time() + float(sys.argv[2])
while time.time() < end and not os.path.exists(sys.argv[3]):
    libc.renameat2(fd, b"sw", fd, b"swl", 2)  # RENAME_EXCHANGE
' "$d/race" 900 "$d/race.stop")
    if [ "$mode" = rootless ]; then
        su "$user" -s /bin/bash -c "$(printf '%q ' "${swapper[@]}")" &
    else
        "${swapper[@]}" &
    fi
    # A step whose context hashing meets the swap half-way fails ("not a directory"); the
    # build then stops, so builds go on until 200 steps were tried.
    local pid=$! ran=0 tried=0 i
    for i in $(seq 1 250); do
        "${run[@]}" "./mkimg build --no-cache --progress=plain race" >>"$d/race.log" 2>&1
        tried=$(grep -cE '^\[[0-9]+/21\] RUN' "$d/race.log")
        [ "$tried" -ge 200 ] && break
    done
    touch "$d/race.stop"
    wait "$pid"
    ran=$(grep -cE '^#[0-9]+ [0-9.]+ ran-[0-9]+$' "$d/race.log")
    t_ok "$mode: race: $tried steps tried to bind the directory being swapped" test "$tried" -ge 200
    t_ok "$mode: race: $ran of them ran" test "$ran" -ge 20
    t_eq "$mode: race: no step saw the host directory behind the symlink" \
        "$(grep -c TOPSECRET "$d/race.log")" 0
}

scenario root "$T/root" bash -c 'cd "$0" && export MKIMG_ROOT="$0/store" && eval "$1"' "$T/root"
chmod 755 "$T"
as_user() {
    su "$user" -s /bin/bash -c "cd '$T/user' && export MKIMG_ROOT='$T/user/store' XDG_RUNTIME_DIR= && $1"
}
scenario rootless "$T/user" as_user

t_done
