#!/usr/bin/env bash
# docker-registry over TLS with a test CA: --cert-dir verifies, --tls-verify=true without the
# CA fails clearly, --tls-verify=false skips verification (and falls back to plain HTTP).
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
t_import_busybox
reg_tls_certs
REG_HTTP_EXTRA=$REG_TLS_YAML
if ! reg_start tls; then t_fail "TLS registry starts"; t_done; exit 1; fi
REG_HTTP_EXTRA=

"$MKIMG" push -q --tls-verify=true busybox "$REG/tls/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "an unknown CA fails verification" "$rc" 1
t_grep "with a certificate error" 'certificate' "$T/err"
"$MKIMG" push -q --cert-dir "$T/certs" busybox "$REG/tls/bb:1" >"$T/digest" 2>"$T/err"; rc=$?
t_eq "push with --cert-dir" "$rc" 0
t_ok "skopeo verifies and reads it" skopeo inspect --cert-dir "$T/certs" "docker://$REG/tls/bb:1"
t_eq "same digest over TLS" \
    "sha256:$(skopeo inspect --raw --cert-dir "$T/certs" "docker://$REG/tls/bb:1" | sha256sum | cut -d' ' -f1)" \
    "$(cat "$T/digest")"
t_ok "pull with --cert-dir" env MKIMG_ROOT="$T/s2" "$MKIMG" pull -q --cert-dir "$T/certs" "$REG/tls/bb:1"
t_ok "pull with --tls-verify=false" env MKIMG_ROOT="$T/s3" "$MKIMG" pull -q --tls-verify=false "$REG/tls/bb:1"
# Go's TLS server offers HTTP/2 (ALPN); mkimg takes it, for pushes and pulls alike
t_grep "pulls speak HTTP/2 over TLS" '"GET /v2/tls/bb/blobs/sha256:[0-9a-f]+ HTTP/2.0" 200 [0-9]+ "" "mkimg/' "$REG_LOG"
t_grep "pushes too" '"PUT /v2/tls/bb/manifests/1 HTTP/2.0" 201 [0-9]+ "" "mkimg/' "$REG_LOG"
"$MKIMG" pull -q --cert-dir "$T/nonexistent" "$REG/tls/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "a --cert-dir without certificates fails" "$rc" 1
t_grep "and says so" "certificate directory \"$T/nonexistent\"" "$T/err"

# --tls-verify=false also reaches a plain HTTP registry
if reg_start plain; then
    t_ok "--tls-verify=false falls back to plain HTTP" "$MKIMG" push -q --tls-verify=false busybox "$REG/p/bb:1"
else
    t_fail "plain registry starts"
fi

t_done
