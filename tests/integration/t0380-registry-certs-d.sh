#!/usr/bin/env bash
# The TLS and credential conventions podman and docker users already have: a private-CA
# registry used through /etc/containers/certs.d/HOST:PORT/ (or /etc/docker/certs.d) with the
# default --tls-verify, client certificates there, SSL_CERT_FILE; build takes --cert-dir,
# --tls-verify, --creds, --authfile; clear errors for a TLS registry spoken to in plain HTTP
# and for an unknown CA. The certs.d dirs are per port (this test's registry only) and removed.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
[ "$(id -u)" = 0 ] || { t_skip "writing /etc/containers/certs.d needs root"; t_done; exit 0; }
t_import_busybox
reg_tls_certs
REG_HTTP_EXTRA=$REG_TLS_YAML
if ! reg_start tls; then t_fail "TLS registry starts"; t_done; exit 1; fi
REG_HTTP_EXTRA=
CD=/etc/containers/certs.d/$REG DD=/etc/docker/certs.d/$REG
# The base directories too go again when this test made them.
made=
for b in /etc/containers/certs.d /etc/docker/certs.d; do [ -d "$b" ] || made="$made $b"; done
cleanup_certs() {
    rm -rf "$CD" "$DD"
    for b in $made; do rmdir "$b" 2>/dev/null; done
}
trap 'cleanup_certs; reg_stop; t_cleanup' EXIT

"$MKIMG" push -q busybox "$REG/c/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "a TLS registry spoken to in plain HTTP fails" "$rc" 1
t_grep "saying it speaks TLS" \
    "$REG: the registry speaks TLS \(HTTPS\), but was spoken to in plain HTTP \(it answered HTTP 400\): use --tls-verify=true, and for a private CA put it in /etc/containers/certs.d/$REG/ca.crt" \
    "$T/err"
"$MKIMG" push -q --tls-verify=true busybox "$REG/c/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "an unknown CA fails" "$rc" 1
t_grep "with a hint at certs.d" \
    "certificate.*\(a registry with a private CA: put the CA in /etc/containers/certs.d/$REG/ca.crt or give --cert-dir; --tls-verify=false skips the check\)" \
    "$T/err"

mkdir -p "$CD" && cp "$T/certs/ca.crt" "$CD/ca.crt"
t_ok "push through /etc/containers/certs.d, default --tls-verify" \
    "$MKIMG" push -q busybox "$REG/c/bb:1"
t_ok "skopeo agrees the registry has it" skopeo inspect "docker://$REG/c/bb:1"
t_ok "pull through certs.d" env MKIMG_ROOT="$T/s2" "$MKIMG" pull -q "$REG/c/bb:1"
t_grep "over TLS" '"PUT /v2/c/bb/manifests/1 HTTP/2.0" 201' "$REG_LOG"
printf 'FROM %s/c/bb:1\nRUN true\n' "$REG" >"$T/Dockerfile"
t_ok "build pulls its base through certs.d" \
    env MKIMG_ROOT="$T/s3" "$MKIMG" build -q --pull=always -f "$T/Dockerfile" "$T"
rm -rf "$CD"

mkdir -p "$DD" && cp "$T/certs/ca.crt" "$DD/ca.crt"
t_ok "/etc/docker/certs.d works too" env MKIMG_ROOT="$T/s4" "$MKIMG" pull -q "$REG/c/bb:1"
rm -rf "$DD"
t_ok "SSL_CERT_FILE is trusted" \
    env SSL_CERT_FILE="$T/certs/ca.crt" MKIMG_ROOT="$T/s5" "$MKIMG" pull -q --tls-verify=true "$REG/c/bb:1"
t_ok "build --cert-dir" \
    env MKIMG_ROOT="$T/s6" "$MKIMG" build -q --pull=always --cert-dir "$T/certs" -f "$T/Dockerfile" "$T"
t_ok "build --tls-verify=false" \
    env MKIMG_ROOT="$T/s7" "$MKIMG" build -q --pull=always --tls-verify=false -f "$T/Dockerfile" "$T"
env MKIMG_ROOT="$T/s8" "$MKIMG" build -q --pull=always --tls-verify=true -f "$T/Dockerfile" "$T" \
    >/dev/null 2>"$T/err"; rc=$?
t_eq "build --tls-verify=true without the CA fails" "$rc" 1

# A registry that wants a client certificate: the *.cert and *.key beside ca.crt in certs.d.
openssl req -newkey rsa:2048 -nodes -keyout "$T/client.key" -out "$T/client.csr" -subj /CN=client \
    >/dev/null 2>&1
openssl x509 -req -in "$T/client.csr" -CA "$T/certs/ca.crt" -CAkey "$T/ca.key" -CAcreateserial \
    -out "$T/client.cert" -days 2 >/dev/null 2>&1
REG_HTTP_EXTRA=$(printf '%s\n    clientcas:\n      - %s' "$REG_TLS_YAML" "$T/certs/ca.crt")
if reg_start mtls; then
    REG_HTTP_EXTRA=
    CD=/etc/containers/certs.d/$REG
    trap 'cleanup_certs; reg_stop; t_cleanup' EXIT
    mkdir -p "$CD" && cp "$T/certs/ca.crt" "$CD/ca.crt"
    "$MKIMG" push -q busybox "$REG/m/bb:1" >/dev/null 2>&1; rc=$?
    t_eq "without a client certificate the push fails" "$rc" 1
    cp "$T/client.cert" "$T/client.key" "$CD/"
    t_ok "with client.cert and client.key in certs.d it succeeds" "$MKIMG" push -q busybox "$REG/m/bb:1"
    rm -rf "$CD"
else
    t_fail "registry with client certificates starts"
fi
t_done
