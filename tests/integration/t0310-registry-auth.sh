#!/usr/bin/env bash
# htpasswd basic auth and the bearer-token flow (a small token server) on docker-registry;
# mkimg login/logout and the auth files podman and docker use; secrets never printed.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
t_import_busybox
unset REGISTRY_AUTH_FILE
export XDG_RUNTIME_DIR=$T/run HOME=$T/home
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"

# ---- basic auth
reg_htpasswd "$T/htpasswd" tester s3cret-pw
printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$T/htpasswd" >"$T/basic.yml"
if ! reg_start basic "$T/basic.yml"; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi

"$MKIMG" push -q busybox "$REG/test/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "push without credentials fails" "$rc" 1
t_grep "and says why" 'authentication required' "$T/err"
t_ok "push with --creds" "$MKIMG" push -q --creds tester:s3cret-pw busybox "$REG/test/bb:1"

"$MKIMG" login -u tester -p wrong "$REG" >"$T/out" 2>"$T/err"; rc=$?
t_eq "login with a wrong password fails" "$rc" 1
t_eq "login failure message names the registry and the user" "$(cat "$T/err")" \
    "mkimg: $REG: authentication failed for user \"tester\" (the registry refused the credentials or this user's access)"
t_ok "nothing stored by a failed login" test ! -e "$XDG_RUNTIME_DIR/containers/auth.json"
echo s3cret-pw | "$MKIMG" login -u tester --password-stdin "$REG" >"$T/out" 2>"$T/err"
t_eq "login succeeds" "$(cat "$T/out")" "Login Succeeded!"
t_eq "auth.json holds the credentials like podman's" \
    "$(jq -r --arg r "$REG" '.auths[$r].auth' "$XDG_RUNTIME_DIR/containers/auth.json" | base64 -d)" \
    tester:s3cret-pw
t_eq "auth.json is private" "$(stat -c %a "$XDG_RUNTIME_DIR/containers/auth.json")" 600
t_ok "push with the stored login" "$MKIMG" push -q busybox "$REG/test/bb:2"
MKIMG_ROOT=$T/s2 "$MKIMG" pull "$REG/test/bb:2" >/dev/null 2>"$T/err"; rc=$?
t_eq "pull with the stored login" "$rc" 0
t_eq "credentials never printed" "$(cat "$T/err" | grep -c s3cret)" 0
t_ok "logout" "$MKIMG" logout "$REG"
"$MKIMG" logout "$REG" >/dev/null 2>"$T/err"; rc=$?
t_eq "logout again fails" "$rc" 1
t_eq "logout message" "$(cat "$T/err")" "mkimg: not logged in to $REG"
MKIMG_ROOT=$T/s3 "$MKIMG" pull -q "$REG/test/bb:2" >/dev/null 2>&1; rc=$?
t_eq "pull after logout fails" "$rc" 1

# docker's config.json, REGISTRY_AUTH_FILE and --authfile
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf tester:s3cret-pw | base64)" \
    >"$HOME/.docker/config.json"
t_ok "pull with docker's config.json" env MKIMG_ROOT="$T/s4" "$MKIMG" pull -q "$REG/test/bb:1"
rm "$HOME/.docker/config.json"
"$MKIMG" login --authfile "$T/af.json" -u tester -p s3cret-pw "$REG" >/dev/null 2>&1
t_ok "--authfile login" test -s "$T/af.json"
t_ok "pull with --authfile" env MKIMG_ROOT="$T/s5" "$MKIMG" pull -q --authfile "$T/af.json" "$REG/test/bb:1"
t_ok "pull with REGISTRY_AUTH_FILE" env MKIMG_ROOT="$T/s6" REGISTRY_AUTH_FILE="$T/af.json" \
    "$MKIMG" pull -q "$REG/test/bb:1"
t_ok "skopeo reads mkimg's auth file" skopeo inspect --tls-verify=false --authfile "$T/af.json" \
    "docker://$REG/test/bb:1"

# ---- bearer tokens
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tok.key" -out "$T/tok.crt" -days 2 \
    -subj /CN=token-issuer >/dev/null 2>&1
reg_bg python3 "$MKIMG_TOP/tests/lib/token-server.py" "$T/tok.port" "$T/tok.key" "$T/tok.crt" \
    tester s3cret-pw test-registry test-issuer "$T/tok.log"
if ! reg_wait_file "$T/tok.port"; then t_fail "token server starts"; t_done; exit 1; fi
printf 'auth:\n  token:\n    realm: http://127.0.0.1:%s/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: %s\n' \
    "$(cat "$T/tok.port")" "$T/tok.crt" >"$T/token.yml"
if ! reg_start token "$T/token.yml"; then t_fail "registry with token auth starts"; t_done; exit 1; fi
"$MKIMG" push -q busybox "$REG/tok/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "anonymous push to a token registry fails" "$rc" 1
t_grep "with a clear message" 'authentication required' "$T/err"
t_ok "push with a token" "$MKIMG" push -q --creds tester:s3cret-pw busybox "$REG/tok/bb:1"
t_grep "the token server saw the push scope" '^token tester repository:tok/bb:(pull,push|push,pull)' "$T/tok.log"
t_ok "pull with a token" env MKIMG_ROOT="$T/s7" "$MKIMG" pull -q --creds tester:s3cret-pw "$REG/tok/bb:1"
"$MKIMG" login -u tester -p nope "$REG" >/dev/null 2>"$T/err"; rc=$?
t_eq "token login with a wrong password fails" "$rc" 1
t_grep "token failure message" 'authentication failed' "$T/err"
t_ok "token login" "$MKIMG" login -u tester -p s3cret-pw "$REG"

t_done
