# tests/lib/registry.sh - a throwaway docker-registry (distribution) on 127.0.0.1 (sourced
# after test-lib.sh).
#
#   reg_start [NAME] [EXTRA_YAML_FILE]   starts a registry with fresh storage in $T/reg-NAME on
#                                        a free port; sets REG (host:port), REG_LOG (its log,
#                                        including the access log) and REG_PID; lines in
#                                        $REG_HTTP_EXTRA go into its http: section
#   reg_stop                             stops every registry this script started (also at exit)
#   reg_count METHOD PATH_REGEX          access-log lines for matching requests
#   reg_tls_certs                        a test CA in $T/certs and a 127.0.0.1 certificate;
#                                        REG_TLS_YAML: the http: lines that serve TLS with it
#   reg_proxy PLAN                       starts tests/lib/fault-proxy.py with PLAN in front of
#                                        $REG; sets PX (host:port) and PXLOG (its log)
#
# Nothing here ever talks to an address outside 127.0.0.1.
REG_PIDS=()
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY

reg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

reg_start() {
    local name=${1:-main} extra=${2:-} dir port i
    command -v docker-registry >/dev/null || return 1
    dir=$T/reg-$name
    mkdir -p "$dir/data"
    port=$(reg_free_port)
    {
        echo "version: 0.1"
        echo "log:"
        echo "  level: info"
        echo "  accesslog:"
        echo "    disabled: false"
        echo "storage:"
        echo "  filesystem:"
        echo "    rootdirectory: $dir/data"
        echo "  delete:"
        echo "    enabled: true"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        [ -n "${REG_HTTP_EXTRA:-}" ] && printf '%s\n' "$REG_HTTP_EXTRA"
        [ -n "$extra" ] && cat "$extra"
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    REG_PID=$!
    REG_PIDS+=("$REG_PID")
    REG=127.0.0.1:$port
    REG_LOG=$dir/log
    for i in $(seq 1 100); do
        if grep -q "listening on" "$REG_LOG" 2>/dev/null; then return 0; fi
        kill -0 "$REG_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "# registry did not start:"; sed 's/^/#   /' "$REG_LOG" | tail -5
    return 1
}

reg_stop() {
    local p
    for p in "${REG_PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    REG_PIDS=()
}

reg_count() { # METHOD PATH_REGEX
    grep -cE "\"$1 $2 HTTP" "$REG_LOG"
}

trap 'reg_stop; t_cleanup' EXIT

# reg_bg CMD...: a helper process (token server, proxy) stopped with the registries.
reg_bg() {
    "$@" &
    REG_PIDS+=("$!")
}

# reg_htpasswd FILE USER PASSWORD: a bcrypt htpasswd file (no apache2-utils needed).
reg_htpasswd() {
    python3 -W ignore -c 'import crypt,sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$2" "$3" >"$1"
}

# reg_tls_certs: a test CA in $T/certs (for --cert-dir) and a certificate for 127.0.0.1 it
# signed; sets REG_TLS_YAML, the http: lines that make reg_start's registry serve TLS with it
# (REG_HTTP_EXTRA=$REG_TLS_YAML reg_start ...).
reg_tls_certs() {
    mkdir -p "$T/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/certs/ca.crt" -days 2 \
        -subj /CN=mkimg-test-ca >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" -subj /CN=127.0.0.1 \
        >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1\n' >"$T/ext"
    openssl x509 -req -in "$T/srv.csr" -CA "$T/certs/ca.crt" -CAkey "$T/ca.key" -CAcreateserial \
        -out "$T/srv.crt" -days 2 -extfile "$T/ext" >/dev/null 2>&1
    REG_TLS_YAML=$(printf '  tls:\n    certificate: %s\n    key: %s' "$T/srv.crt" "$T/srv.key")
}

# reg_wait_file FILE: waits up to 10 s for a helper to write FILE.
reg_wait_file() {
    local i
    for i in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
    return 1
}

# reg_proxy PLAN: a fault-injecting proxy in front of $REG (see tests/lib/fault-proxy.py).
reg_proxy_n=0
reg_proxy() {
    reg_proxy_n=$((reg_proxy_n + 1))
    PXLOG=$T/px$reg_proxy_n.log
    : >"$PXLOG"
    reg_bg python3 "$MKIMG_TOP/tests/lib/fault-proxy.py" "$T/px$reg_proxy_n.port" "$REG" "$1" "$PXLOG"
    reg_wait_file "$T/px$reg_proxy_n.port" || return 1
    PX=127.0.0.1:$(cat "$T/px$reg_proxy_n.port")
}
