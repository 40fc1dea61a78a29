#!/usr/bin/env bash
# Credentials where podman and docker leave them: `podman login` then `mkimg push` (podman's
# auth file is ${XDG_RUNTIME_DIR}/containers/auth.json, or /run/containers/UID/auth.json when
# XDG_RUNTIME_DIR is unset), $DOCKER_CONFIG/config.json; refused credentials name the registry
# and the user, missing ones say how to log in.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
command -v podman >/dev/null || { t_skip "podman not installed"; t_done; exit 0; }
t_import_busybox
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
export HOME=$T/home
mkdir -p "$HOME"
reg_htpasswd "$T/htpasswd" tester s3cret-pw
printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$T/htpasswd" >"$T/basic.yml"
if ! reg_start basic "$T/basic.yml"; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi

"$MKIMG" push -q busybox "$REG/p/bb:0" >/dev/null 2>"$T/err"; rc=$?
t_eq "push without credentials fails" "$rc" 1
t_grep "saying there are none and how to log in" \
    "$REG: authentication required: no credentials for this registry \(use \"mkimg login $REG\", --creds or --authfile\)" \
    "$T/err"
"$MKIMG" push -q --creds tester:wrong busybox "$REG/p/bb:0" >/dev/null 2>"$T/err"; rc=$?
t_eq "wrong credentials fail" "$rc" 1
t_grep "naming the registry and the user" "$REG: authentication failed for user \"tester\"" "$T/err"
t_eq "the password is never printed" "$(grep -c wrong "$T/err")" 0

# podman with XDG_RUNTIME_DIR set
export XDG_RUNTIME_DIR=$T/run
mkdir -p "$XDG_RUNTIME_DIR"
t_ok "podman login (XDG_RUNTIME_DIR)" podman login --tls-verify=false -u tester -p s3cret-pw "$REG"
t_ok "podman wrote its auth file there" test -s "$XDG_RUNTIME_DIR/containers/auth.json"
t_ok "mkimg push uses podman's login" "$MKIMG" push -q busybox "$REG/p/bb:1"
podman logout "$REG" >/dev/null 2>&1

# podman as root without XDG_RUNTIME_DIR: /run/containers/0/auth.json
if [ "$(id -u)" = 0 ]; then
    unset XDG_RUNTIME_DIR
    trap 'podman logout "$REG" >/dev/null 2>&1; reg_stop; t_cleanup' EXIT
    t_ok "podman login (root, no XDG_RUNTIME_DIR)" podman login --tls-verify=false -u tester -p s3cret-pw "$REG"
    t_grep "podman wrote /run/containers/0/auth.json" "\"$REG\"" /run/containers/0/auth.json
    t_ok "mkimg push uses it" "$MKIMG" push -q busybox "$REG/p/bb:2"
    t_ok "mkimg pull too" env MKIMG_ROOT="$T/s2" "$MKIMG" pull -q "$REG/p/bb:2"
    podman logout "$REG" >/dev/null 2>&1
else
    t_skip "podman's root auth file needs root"
fi

# docker's config.json under $DOCKER_CONFIG
export XDG_RUNTIME_DIR=$T/run2
mkdir -p "$XDG_RUNTIME_DIR" "$T/dcfg"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf tester:s3cret-pw | base64)" \
    >"$T/dcfg/config.json"
MKIMG_ROOT=$T/s3 "$MKIMG" pull -q "$REG/p/bb:1" >/dev/null 2>&1; rc=$?
t_eq "without DOCKER_CONFIG the pull has no credentials" "$rc" 1
t_ok "with DOCKER_CONFIG it has" env DOCKER_CONFIG="$T/dcfg" MKIMG_ROOT="$T/s4" "$MKIMG" pull -q "$REG/p/bb:1"
t_ok "build --authfile takes a docker config.json" \
    bash -c 'printf "FROM %s/p/bb:1\n" "$1" | MKIMG_ROOT="$2" "$3" build -q --pull=always --authfile "$4" -f - "$5"' \
    _ "$REG" "$T/s5" "$MKIMG" "$T/dcfg/config.json" "$T"
t_ok "build --creds" \
    bash -c 'printf "FROM %s/p/bb:1\n" "$1" | MKIMG_ROOT="$2" "$3" build -q --pull=always --creds tester:s3cret-pw -f - "$4"' \
    _ "$REG" "$T/s6" "$MKIMG" "$T"
t_done
