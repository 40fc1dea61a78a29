#!/usr/bin/env bash
# Attacks on registry credentials and the files registry commands write (issue 15):
# a host name that merely starts with "127." is not loopback (https, never plain HTTP), an
# https registry whose bearer realm is plain http gets no credentials, and the auth file of
# `login` and push's --digestfile never follow a symlink planted at the temp name older
# mkimg derived from its PID. Nothing leaves 127.0.0.1: the 127.x name goes to a local proxy.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
t_import_busybox
unset REGISTRY_AUTH_FILE
export XDG_RUNTIME_DIR=$T/run HOME=$T/home
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"

# ---- "127.attacker.invalid" is a name, not the loopback address
# A proxy that logs each request's first line (and whether it carried credentials), refuses
# tunnels and asks plain requests for Basic credentials, as a hostile registry would.
cat >"$T/proxy.py" <<'PY'
import socketserver, sys
portfile, log = sys.argv[1:3]
class H(socketserver.StreamRequestHandler):
    def handle(self):
        lines = []
        while True:
            l = self.rfile.readline()
            if not l or l in (b"\r\n", b"\n"):
                break
            lines.append(l.decode("latin-1").strip())
        if not lines:
            return
        auth = any(l.lower().startswith("authorization:") for l in lines[1:])
        with open(log, "a") as f:
            f.write(lines[0] + (" +credentials" if auth else "") + "\n")
        if lines[0].startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        else:
            self.wfile.write(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
open(portfile + ".tmp", "w").write(str(srv.server_address[1]))
import os; os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY
reg_bg python3 "$T/proxy.py" "$T/proxy.port" "$T/proxy.log"
if ! reg_wait_file "$T/proxy.port"; then t_fail "proxy starts"; t_done; exit 1; fi
px=http://127.0.0.1:$(cat "$T/proxy.port")
env -u no_proxy -u NO_PROXY http_proxy="$px" https_proxy="$px" \
    "$MKIMG" pull -q --retry 0 --creds tester:s3cret-pw 127.attacker.invalid/a/b:1 \
    >/dev/null 2>"$T/err"; rc=$?
t_eq "pull from 127.attacker.invalid fails" "$rc" 1
t_grep "mkimg tried https (a tunnel to port 443)" '^CONNECT 127\.attacker\.invalid:443 ' "$T/proxy.log"
t_eq "and sent no plain-HTTP request, with or without credentials" \
    "$(grep -vc '^CONNECT ' "$T/proxy.log")" 0

if [ "$(id -u)" = 0 ] && user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh"); then
    mkdir -p "$T/u" && cp "$MKIMG" "$T/u/" && chown -R "$user" "$T/u"
    : >"$T/proxy.log"
    su "$user" -s /bin/bash -c "cd '$T/u' && unset no_proxy NO_PROXY && MKIMG_ROOT='$T/u/store' \
        XDG_RUNTIME_DIR= http_proxy=$px https_proxy=$px ./mkimg pull -q --retry 0 \
        --creds tester:s3cret-pw 127.attacker.invalid/a/b:1" >/dev/null 2>&1
    t_eq "rootless: only a tunnel to 127.attacker.invalid:443, no plain HTTP" \
        "$(grep -c '^CONNECT 127\.attacker\.invalid:443 ' "$T/proxy.log") $(grep -vc '^CONNECT ' "$T/proxy.log")" "1 0"
else
    t_skip "rootless part needs root and the test user"
fi

# ---- the bearer realm of an https registry is plain http
reg_tls_certs
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tok.key" -out "$T/tok.crt" -days 2 \
    -subj /CN=token-issuer >/dev/null 2>&1
reg_bg python3 "$MKIMG_TOP/tests/lib/token-server.py" "$T/tok.port" "$T/tok.key" "$T/tok.crt" \
    tester s3cret-pw test-registry test-issuer "$T/tok.log"
if ! reg_wait_file "$T/tok.port"; then t_fail "token server starts"; t_done; exit 1; fi
realm=http://127.0.0.1:$(cat "$T/tok.port")/token
printf 'auth:\n  token:\n    realm: %s\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: %s\n' \
    "$realm" "$T/tok.crt" >"$T/token.yml"
REG_HTTP_EXTRA=$REG_TLS_YAML
if ! reg_start tls-token "$T/token.yml"; then t_fail "TLS registry with token auth starts"; t_done; exit 1; fi
REG_HTTP_EXTRA=
"$MKIMG" push -q --retry 0 --cert-dir "$T/certs" --creds tester:s3cret-pw busybox "$REG/t/bb:1" \
    >/dev/null 2>"$T/err"; rc=$?
t_eq "push to an https registry with an http token realm fails" "$rc" 1
t_eq "the token server never saw the credentials" "$(cat "$T/tok.log" 2>/dev/null | grep -c '^token tester')" 0
t_eq "and mkimg says why, in one line" "$(wc -l <"$T/err") $(grep -cF ": $REG: refusing to send credentials to the plain-http token realm \"$realm\" of an https registry" "$T/err")" "1 1"
reg_stop

# ---- login's auth file and push --digestfile: planted temp-file symlinks
echo "host file, must stay" >"$T/victim"
plant() { t_planted "$T/victim" "$@"; }
reg_htpasswd "$T/htpasswd" tester s3cret-pw
printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$T/htpasswd" >"$T/basic.yml"
if ! reg_start basic "$T/basic.yml"; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi
mkdir -p "$T/a"
plant "$T/a/.auth.json.tmp.%P" "$MKIMG" login --authfile "$T/a/auth.json" -u tester -p s3cret-pw \
    "$REG" >/dev/null 2>"$T/err"
t_eq "login: the victim is unchanged" "$(head -c 40 "$T/victim" | tr -c '[:print:]' .)" \
    "host file, must stay."
echo "host file, must stay" >"$T/victim"
t_eq "login: the auth file holds the login" \
    "$(jq -r --arg r "$REG" '.auths[$r].auth' "$T/a/auth.json" 2>/dev/null | base64 -d)" tester:s3cret-pw
plant "$T/a/.digest.tmp.%P" "$MKIMG" push -q --creds tester:s3cret-pw --digestfile "$T/a/digest" \
    busybox "$REG/t/bb:1" >/dev/null 2>"$T/err"
t_eq "push --digestfile: the victim is unchanged" \
    "$(head -c 40 "$T/victim" | tr -c '[:print:]' .)" "host file, must stay."
t_grep "push --digestfile: holds the digest" '^sha256:[0-9a-f]{64}$' "$T/a/digest"
# The loopback default itself still holds: "localhost" is plain HTTP like 127.0.0.1.
t_ok "localhost is still spoken to in plain HTTP" env MKIMG_ROOT="$T/s2" \
    "$MKIMG" pull -q --creds tester:s3cret-pw "localhost:${REG#*:}/t/bb:1"
t_done
