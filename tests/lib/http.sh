# tests/lib/http.sh - HTTP servers on 127.0.0.1 for ADD <url> and remote-context tests (sourced
# after test-lib.sh).
#
#   http_start DIR      serves DIR on a free port; sets HTTP (127.0.0.1:port) and HTTP_LOG (one
#                       line per request: "GET /path STATUS")
#   http_count PATH     how many GET requests for PATH the server has answered
#   https_start DIR CERT KEY  the same over TLS; sets HTTPS (127.0.0.1:port)
#   git_http_start DIR [CERT KEY]  serves the bare git repositories under DIR over git's smart
#                       HTTP (`git http-backend`), over TLS with CERT and KEY; sets GIT_HTTP and
#                       GIT_HTTP_LOG likewise
#   git_test_repo WORK BARE  commits what is in WORK plus sub/f "one" on branch main, tags it
#                       v1 (GIT_FIRST: its commit), commits sub/f "two", clones WORK bare to
#                       BARE; git_work ARGS... runs git in WORK with an identity
#
# The servers stop with the test (and by themselves after 15 minutes). Proxy variables are
# cleared so that nothing leaves 127.0.0.1.
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
HTTP_PIDS=

# http_serve SCRIPT DIR NAME [ARGS...]: starts tests/lib/SCRIPT on DIR, port in $T/NAME.port.
http_serve() {
    local i
    : >"$T/$3.log"
    rm -f "$T/$3.port"
    python3 "$MKIMG_TOP/tests/lib/$1" "$2" "$T/$3.port" "$T/$3.log" "${@:4}" &
    HTTP_PIDS="$HTTP_PIDS $!"
    trap 'kill $HTTP_PIDS 2>/dev/null; t_cleanup' EXIT
    for i in $(seq 100); do
        [ -s "$T/$3.port" ] && break
        sleep 0.1
    done
    [ -s "$T/$3.port" ] || return 1
}

http_start() {
    http_serve http-server.py "$1" http || return 1
    HTTP_LOG=$T/http.log
    HTTP=127.0.0.1:$(cat "$T/http.port")
}

https_start() {
    http_serve http-server.py "$1" https "$2" "$3" || return 1
    HTTPS=127.0.0.1:$(cat "$T/https.port")
}

git_http_start() {
    http_serve git-http-server.py "$1" git-http "${@:2}" || return 1
    GIT_HTTP_LOG=$T/git-http.log
    GIT_HTTP=127.0.0.1:$(cat "$T/git-http.port")
}

http_count() {
    grep -c "^GET $1 " "$HTTP_LOG"
}

git_work() {
    git -C "$GIT_WORK" -c user.name=t -c user.email=t@t "$@"
}

git_test_repo() {
    GIT_WORK=$1
    mkdir -p "$1/sub" "$(dirname "$2")"
    git init -q -b main "$1"
    echo one >"$1/sub/f"
    git_work add . && git_work commit -qm one && git_work tag v1
    GIT_FIRST=$(git_work rev-parse HEAD)
    echo two >"$1/sub/f"
    git_work commit -qam two
    git clone -q --bare "$1" "$2"
}
