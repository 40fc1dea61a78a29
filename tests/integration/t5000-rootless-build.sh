#!/usr/bin/env bash
# The same sample built by an ordinary user (with a subordinate id range) gives the same tree
# as the build by root: paths, types, modes, owners as seen in the image, contents.
. "$(dirname "$0")/../lib/test-lib.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }

# Everything the user needs, readable by the user.
mkdir -p "$T/u"
cp "$MKIMG" "$T/u/mkimg"
cp -r "$MKIMG_TOP/samples/hello" "$T/u/hello"
cat >>"$T/u/hello/Dockerfile" <<'DF'
RUN mkdir -p /home/svc && chown 1000:1000 /home/svc && echo data > /home/svc/f && chown 1000:1000 /home/svc/f
RUN echo 'tester:x:4242:4242::/tmp:/bin/sh' >> /etc/passwd && su tester -c 'echo mine > /tmp/mine'
DF
chown -R "$user" "$T/u"
# Each side lays out its own base: the user's files are the user's (root inside its
# namespace), root's are root's, so both imports start from the same image.
cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
"$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/rootfs"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }

t_ok "rootless rootfs" as_user ./busybox-rootfs.sh rootfs
t_ok "rootless import" as_user ./mkimg import rootfs busybox:latest
t_ok "rootless build" as_user ./mkimg build -t hello hello
as_user ./mkimg images >"$T/imgs" 2>&1
t_grep "rootless images lists hello" '^hello +latest' "$T/imgs"

a=$(skopeo inspect "oci:$T/u/store:busybox:latest" | jq -r '.Layers[0]')
# The reference: the same build as root.
t_ok "root import" "$MKIMG" import "$T/rootfs" busybox:latest
t_ok "root build" "$MKIMG" build -t hello "$T/u/hello"

t_eq "rootless and root imports give the same base layer" \
    "$(skopeo inspect "oci:$MKIMG_ROOT:busybox:latest" | jq -r '.Layers[0]')" "$a"
t_ok "umoci unpack rootless image" umoci unpack --image "$T/u/store:hello:latest" "$T/b-user"
t_ok "umoci unpack root image" umoci unpack --image "$MKIMG_ROOT:hello:latest" "$T/b-root"
listing() { # paths, types, modes, owners, sizes, content digests (mtimes differ by design)
    (cd "$1/rootfs" && find . -printf '%p %y %m %U:%G %s\n' | sort &&
        find . -type f -exec sha256sum {} + | sort -k2)
}
listing "$T/b-root" >"$T/l-root"
listing "$T/b-user" >"$T/l-user"
if diff -u "$T/l-root" "$T/l-user" >"$T/l-diff"; then t_pass "rootless tree equals root tree"
else t_fail "rootless tree equals root tree"; sed 's/^/# /' "$T/l-diff" | head -30; fi
t_eq "owner 1000 kept in the rootless image" "$(stat -c %u:%g "$T/b-user/rootfs/home/svc/f")" 1000:1000
t_eq "user switching inside RUN works rootless" "$(stat -c %u "$T/b-user/rootfs/tmp/mine")" 4242
t_done
