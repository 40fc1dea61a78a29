#!/usr/bin/env bash
# An ordinary user without XDG_RUNTIME_DIR: podman's auth file is /run/containers/UID/auth.json
# with the user's own uid, though mkimg runs as 0 in its user namespace.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
command -v docker-registry >/dev/null || { t_skip "docker-registry not available"; t_done; exit 0; }
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
uid=$(id -u "$user")
reg_htpasswd "$T/htpasswd" tester s3cret-pw
printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$T/htpasswd" >"$T/basic.yml"
if ! reg_start basic "$T/basic.yml"; then t_fail "registry with htpasswd starts"; t_done; exit 1; fi

mkdir -p "$T/u"
cp "$MKIMG" "$T/u/mkimg"
cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
chown -R "$user" "$T/u"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' HOME='$T/u' $*"; }
t_ok "rootless rootfs" as_user ./busybox-rootfs.sh rootfs
t_ok "rootless import" as_user ./mkimg import rootfs busybox:latest

authdir=/run/containers/$uid
created=
[ -d "$authdir" ] || created=1
# podman's login as root (t0380) may have made /run/containers 0700; the user must reach its
# own directory below it, as on a machine where rootless podman works.
parent_mode=$(stat -c %a /run/containers 2>/dev/null || true)
mkdir -p "$authdir"
chmod 755 /run/containers
[ -e "$authdir/auth.json" ] && cp "$authdir/auth.json" "$T/auth.json.saved"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf tester:s3cret-pw | base64)" >"$authdir/auth.json"
chown -R "$user" "$authdir"
restore() {
    [ -n "$parent_mode" ] && chmod "$parent_mode" /run/containers
    if [ -e "$T/auth.json.saved" ]; then cp "$T/auth.json.saved" "$authdir/auth.json"
    elif [ -n "$created" ]; then rm -rf "$authdir"; else rm -f "$authdir/auth.json"; fi
}
trap 'restore; reg_stop; t_cleanup' EXIT

t_ok "rootless push with /run/containers/UID/auth.json" \
    as_user env -u XDG_RUNTIME_DIR ./mkimg push -q busybox "$REG/r/bb:1"
t_ok "the registry has it" skopeo inspect --tls-verify=false --creds tester:s3cret-pw "docker://$REG/r/bb:1"
t_done
