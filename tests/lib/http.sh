# tests/lib/http.sh - a static file server on 127.0.0.1 for ADD <url> tests (sourced after
# test-lib.sh).
#
#   http_start DIR     serves DIR on a free port; sets HTTP (127.0.0.1:port) and HTTP_LOG (one
#                      line per request: "GET /path STATUS")
#   http_count PATH    how many GET requests for PATH the server has answered
#
# The server stops with the test (and by itself after 15 minutes). Proxy variables are
# cleared so that nothing leaves 127.0.0.1.
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
HTTP_PID=

http_start() {
    local i
    HTTP_LOG=$T/http.log
    : >"$HTTP_LOG"
    rm -f "$T/http.port"
    python3 "$MKIMG_TOP/tests/lib/http-server.py" "$1" "$T/http.port" "$HTTP_LOG" &
    HTTP_PID=$!
    trap 'kill $HTTP_PID 2>/dev/null; t_cleanup' EXIT
    for i in $(seq 100); do
        [ -s "$T/http.port" ] && break
        sleep 0.1
    done
    [ -s "$T/http.port" ] || return 1
    HTTP=127.0.0.1:$(cat "$T/http.port")
}

http_count() {
    grep -c "^GET $1 " "$HTTP_LOG"
}
