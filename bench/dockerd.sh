# bench/dockerd.sh - sourced by bench/run.sh: BuildKit as a peer, through a private dockerd
# (Debian's docker.io 20.10, whose `DOCKER_BUILDKIT=1 docker build` runs the embedded BuildKit).
# The daemon is the bench's own: data-root, exec-root, pidfile, trust key (daemon.json's
# deprecated-key-path, else it writes /etc/docker/key.json), client config and socket all live
# in DIR (on the bench loop fs), its cgroups under /mkimg-bench-PID, no bridge and no iptables
# rules; the client reaches it only through DOCKER_HOST=unix://DIR/docker.sock, never through
# /var/run/docker.sock. cgroupfs is the cgroup driver: this machine's hierarchy is hybrid
# v1 + v2 and there is no systemd to delegate to.
# /usr/bin/docker is named explicitly: a newer CLI earlier in PATH wants the buildx plugin for
# DOCKER_BUILDKIT=1 and refuses to build without it.
#
# dk_start DIR - starts the daemon and sets DOCKER_HOST/DOCKER_CONFIG; on failure prints why in
#   one line, then the daemon's last log lines, and returns 1, leaving nothing running.
# dk_stop - stops it (TERM, then KILL after 20 s, its containerd too) and removes what it left
#   outside DIR (its cgroups, /run/docker if it created it). Safe to call twice.
# The daemon runs in a session of its own, so that a Ctrl-C reaches the bench (whose exit trap
# calls dk_stop) and not dockerd, which would otherwise quit halfway through a timed build.
dk_docker=/usr/bin/docker
dk_dir=
dk_pid=
dk_cgroup=
dk_made_run=0

dk_start() {
    local i
    dk_dir=$1
    dk_cgroup=mkimg-bench-$$
    for i in /usr/sbin/dockerd "$dk_docker" containerd runc; do
        command -v "$i" >/dev/null || { echo "dockerd: $i not found (docker.io not installed)"; return 1; }
    done
    [ -e /run/docker ] || dk_made_run=1
    mkdir -p "$dk_dir/data" "$dk_dir/exec" "$dk_dir/config"
    echo "{\"deprecated-key-path\": \"$dk_dir/key.json\"}" >"$dk_dir/daemon.json"
    export DOCKER_HOST=unix://$dk_dir/docker.sock DOCKER_CONFIG=$dk_dir/config
    setsid /usr/sbin/dockerd --config-file "$dk_dir/daemon.json" --data-root "$dk_dir/data" \
        --exec-root "$dk_dir/exec" --pidfile "$dk_dir/dockerd.pid" -H "$DOCKER_HOST" \
        --iptables=false --ip6tables=false --bridge=none --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$dk_cgroup" \
        --log-level warn >"$dk_dir/dockerd.log" 2>&1 &
    dk_pid=$!
    for i in $(seq 150); do
        "$dk_docker" version >/dev/null 2>&1 && return 0
        kill -0 "$dk_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "dockerd did not start: $(grep -v '^$' "$dk_dir/dockerd.log" | tail -n 1)"
    tail -n 5 "$dk_dir/dockerd.log" | sed 's/^/    /'
    dk_stop
    return 1
}

dk_stop() {
    local i ctr
    [ -n "$dk_pid" ] || return 0
    ctr=$(cat "$dk_dir/exec/containerd/containerd.pid" 2>/dev/null || true)
    kill "$dk_pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$dk_pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$dk_pid" 2>/dev/null || true
    wait "$dk_pid" 2>/dev/null || true
    [ -z "$ctr" ] || kill -9 "$ctr" 2>/dev/null || true
    dk_pid=
    find /sys/fs/cgroup/*/"$dk_cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ "$dk_made_run" = 0 ] || rmdir /run/docker/plugins /run/docker 2>/dev/null || true
}

# dk_load ARCHIVE - loads a docker-archive (the bench's busybox base).
dk_load() { "$dk_docker" load -q -i "$1" >/dev/null; }
# dk_reset - an empty build cache and no image but the base.
dk_reset() {
    local base
    base=$("$dk_docker" image inspect -f '{{.Id}}' busybox:latest)
    "$dk_docker" images -qa --no-trunc | sort -u | { grep -vxF "$base" || true; } |
        xargs -r "$dk_docker" rmi -f >/dev/null
    "$dk_docker" builder prune -af >/dev/null
}
