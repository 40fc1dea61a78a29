#!/usr/bin/env bash
# tests/fresh/run.sh - `make check-fresh`: the README's two commands, the first time, on a
# pristine Debian 12 machine.
#
# A minbase bookworm root with git and make (debootstrap, cached as a tarball under
# /var/tmp/mkimg-fresh; MKIMG_FRESH_REFRESH=1 rebuilds it) is unpacked anew for each run;
# the repository is cloned into it at HEAD (uncommitted changes are not tested) as
# /root/mkimg, with ../shared beside it as the tests expect. The root is entered with
# pivot_root in private mount and pid namespaces, not chroot: unshare(CLONE_NEWUSER) fails
# with EPERM in a chroot, and mkimg needs user namespaces. There, as root: `make` must stop
# with one line that says to run `make deps`; `make demo` must end with the sample's
# greeting; `make check` must end with "N passed, 0 failed".
#
# The root uses the network and apt configuration of this machine (its mirror, proxies,
# sources and keyrings). Every mount lives in the private namespace and goes with it; the
# unpacked root is removed at exit and on Ctrl-C (MKIMG_FRESH_KEEP=1 keeps it).
#
# Usage (as root): tests/fresh/run.sh
set -euo pipefail

suite=bookworm
cache=${MKIMG_FRESH_CACHE:-/var/tmp/mkimg-fresh}
tarball=$cache/$suite-minbase-git-make.tar
inner_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    echo "fresh: $*" >&2
    exit 1
}

# The first Debian mirror of this machine's apt sources that serves $suite.
host_mirror() {
    local f m=
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && [ -z "$m" ] || continue
        m=$(awk -v suite="$suite" 'BEGIN { RS = "" } {
            uri = ""; ok = 0; n = split($0, line, "\n")
            for (i = 1; i <= n; i++) {
                if (line[i] ~ /^URIs:/) { split(line[i], w, /[ \t]+/); uri = w[2] }
                if (line[i] ~ /^Suites:/ && line[i] ~ ("[ \t]" suite "([ \t]|$)")) ok = 1
            }
            if (ok && uri != "") { print uri; exit }
        }' "$f")
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] && [ -z "$m" ] || continue
        m=$(sed -nE "s/^deb[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+)[ \t]+$suite([ \t].*)?\$/\2/p" "$f" |
            sed -n 1p)
    done
    echo "${m:-http://deb.debian.org/debian}"
}

# Copies this machine's name resolution and apt configuration into the root at $1.
copy_host_config() {
    local root=$1 d f sources=
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ ! -e "$f" ] || sources=1
    done
    if [ -n "$sources" ]; then
        rm -rf "$root/etc/apt/sources.list" "$root/etc/apt/sources.list.d"
        mkdir -p "$root/etc/apt/sources.list.d"
        [ ! -e /etc/apt/sources.list ] || cp /etc/apt/sources.list "$root/etc/apt/"
    fi
    for d in sources.list.d apt.conf.d preferences.d trusted.gpg.d keyrings auth.conf.d; do
        [ ! -d "/etc/apt/$d" ] || cp -a "/etc/apt/$d/." "$root/etc/apt/$d/"
    done
    [ ! -d /usr/share/keyrings ] || cp -an /usr/share/keyrings/. "$root/usr/share/keyrings/"
    # The root shares this machine's network and runs no init: packages must not start
    # services (a registry's daemon would take the host's port).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
}

make_cache() {
    command -v debootstrap >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        die "cannot install debootstrap"
    local mirror stage
    # Under the lock no one else is making one: a stage left here is from a run that died.
    rm -rf "$cache"/stage-*
    mirror=${MKIMG_FRESH_MIRROR:-$(host_mirror)}
    eval "$(apt-config shell http_proxy Acquire::http::Proxy https_proxy Acquire::https::Proxy)"
    export http_proxy=${http_proxy:-} https_proxy=${https_proxy:-}
    stage=$(mktemp -d "$cache/stage-XXXXXX")
    echo "fresh: debootstrap --variant=minbase $suite from $mirror (once; cached in $tarball)"
    if ! debootstrap --variant=minbase "$suite" "$stage/root" "$mirror" >"$stage/log" 2>&1; then
        tail -n 20 "$stage/log" >&2
        rm -rf "$stage"
        die "debootstrap failed"
    fi
    copy_host_config "$stage/root"
    # What the user of a new machine installs before cloning; nothing else.
    if ! chroot "$stage/root" /usr/bin/env -i PATH="$inner_path" DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends git make &&
               apt-get clean && rm -rf /var/lib/apt/lists/*' >"$stage/log" 2>&1; then
        tail -n 20 "$stage/log" >&2
        rm -rf "$stage"
        die "installing git and make in the new root failed"
    fi
    rm -f "$stage/root/usr/sbin/policy-rc.d"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$stage/root" -cf "$stage/root.tar" .
    mv "$stage/root.tar" "$tarball"
    rm -rf "$stage"
}

# In the private mount and pid namespaces (pid 1 there), before pivot_root: the root's own
# /proc, /dev, /sys, /run and the shared data, then pivot_root and the steps as root.
enter() {
    local root=$1 shared=$2
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    # cgroup hierarchies are submounts that a new sysfs lacks; runc and buildah look there.
    [ ! -d /sys/fs/cgroup ] || mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    mount -t tmpfs -o mode=755,nosuid dev "$root/dev"
    local n name major minor
    for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name major minor <<<"$n"
        mknod -m 666 "$root/dev/$name" c "$major" "$minor"
    done
    mkdir -m 755 "$root/dev/pts" && mkdir -m 1777 "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
    ln -s pts/ptmx "$root/dev/ptmx"
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mount -t tmpfs -o mode=755,nosuid,nodev run "$root/run"
    mkdir -m 1777 "$root/run/lock"
    chmod 1777 "$root/tmp"
    if [ -n "$shared" ]; then
        mkdir -p "$root/root/shared"
        mount --bind "$shared" "$root/root/shared"
        mount -o remount,bind,ro "$root/root/shared"
    fi
    cd "$root"
    mkdir -p .oldroot
    pivot_root . .oldroot
    cd /
    umount -l /.oldroot
    rmdir /.oldroot
    exec /usr/bin/env -i PATH="$inner_path" HOME=/root TERM="${TERM:-dumb}" \
        ${CI:+CI="$CI"} ${MKIMG_TEST_STRICT:+MKIMG_TEST_STRICT="$MKIMG_TEST_STRICT"} \
        /bin/bash /root/fresh-steps.sh --steps
}

# The user's steps, inside the new root.
steps() {
    cd /root/mkimg
    local out greeting last

    echo "fresh: make (before make deps): one line that says to run make deps"
    if out=$(make 2>&1); then
        die "make succeeded without the build packages: $out"
    fi
    echo "$out"
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ $out == *"make deps"* ]] ||
        die "make without the build packages did not stop with one line naming make deps"

    echo "fresh: make demo"
    make demo 2>&1 | tee /root/demo.log || die "make demo failed the first time"
    greeting=$(sed -nE 's/^ENV GREETING="([^"]*)".*/\1/p' samples/hello/Dockerfile)
    last=$(tail -n 1 /root/demo.log)
    [ -n "$greeting" ] && [ "$last" = "$greeting" ] ||
        die "make demo did not end with the sample's greeting \"$greeting\" (last line: \"$last\")"

    echo "fresh: make check"
    make check 2>&1 | tee /root/check.log || die "make check failed the first time"
    last=$(tail -n 1 /root/check.log)
    [[ $last =~ ^([0-9]+)\ passed,\ 0\ failed(,\ [0-9]+\ skipped)?$ ]] &&
        [ "${BASH_REMATCH[1]}" -gt 0 ] ||
        die "make check did not end with \"N passed, 0 failed\" (last line: \"$last\")"
    echo "fresh: make demo and make check passed the first time on a pristine Debian 12 root"
}

case "${1:-}" in
--enter)
    enter "$2" "$3"
    ;;
--steps)
    steps
    exit
    ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, namespaces, pivot_root)"
top=$(cd "$(dirname "$0")/../.." && pwd)
shared=$(cd "$top/../shared" 2>/dev/null && pwd) || shared=
[ -n "$shared" ] || echo "fresh: warning: no $top/../shared; the conformance tests will miss it" >&2
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
    echo "fresh: note: uncommitted changes in $top are not part of this run (it clones HEAD)" >&2

mkdir -p "$cache"
(
    flock 9
    if [ ! -s "$tarball" ] || [ -n "${MKIMG_FRESH_REFRESH:-}" ]; then make_cache; fi
) 9>"$cache/lock"

work=$(mktemp -d "$cache/run-XXXXXX")
child=
cleanup() {
    trap - EXIT INT TERM HUP
    # unshare ignores SIGINT and SIGTERM while it waits (they are for the namespace's init);
    # killed, it takes the whole pid namespace, and so its mounts, with it (--kill-child).
    if [ -n "$child" ]; then
        kill -KILL "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -n "${MKIMG_FRESH_KEEP:-}" ]; then
        echo "fresh: kept $work/root"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

root=$work/root
mkdir "$root"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -xpf "$tarball"
copy_host_config "$root"
git -c advice.detachedHead=false clone -q "$top" "$root/root/mkimg"
cp "$0" "$root/root/fresh-steps.sh"
start=$SECONDS
# A job of its own (set -m): Ctrl-C reaches this script, whose trap ends the namespace, and
# the steps run with SIGINT at its default (a background job would ignore it).
set -m
unshare --mount --propagation private --pid --fork --kill-child \
    bash "$0" --enter "$root" "$shared" </dev/null &
child=$!
wait "$child" && rc=0 || rc=$?
child=
echo "fresh: finished in $((SECONDS - start)) s, exit $rc"
exit "$rc"
