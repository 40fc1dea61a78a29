#!/usr/bin/env bash
# The remote build cache as an unprivileged user (docs/remote-cache.md): store A exports
# type=local with mode=max and cache-mounts=true; store B imports it, runs no RUN, gets A's
# image ID, and a RUN that does run finds A's cache mount restored, files of a subordinate id
# included; both stores stay clean for fsck.
. "$(dirname "$0")/../lib/test-lib.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }
mkdir -p "$T/u/ctx"
cp "$MKIMG" "$T/u/mkimg"
cp "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
cat >"$T/u/ctx/Dockerfile" <<'DF'
FROM busybox
RUN m=RAN; echo "$m-one"; echo one >/one
ARG V=1
RUN --mount=type=cache,target=/c m=RAN; echo "$m-cm V=$V found:$(cat /c/d/marker 2>/dev/null || echo nothing) owner:$(stat -c %u /c/d/marker 2>/dev/null)"; mkdir -p /c/d; echo "on-$V" >/c/d/marker; chown -R 1000:1000 /c/d
DF
chown -R "$user" "$T/u"
as_user() {
    su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store-$1' XDG_RUNTIME_DIR= SOURCE_DATE_EPOCH=1700000000 ${*:2}"
}
ran() { grep -o 'RAN-[a-z0-9]*' "$1" | sort | paste -sd ' ' -; }

t_ok "rootless rootfs" as_user a ./busybox-rootfs.sh rootfs
for s in a b; do t_ok "rootless import ($s)" as_user "$s" ./mkimg import rootfs busybox:latest; done
id_a=$(as_user a ./mkimg build --progress=plain \
    --cache-to "type=local,dest=cache,mode=max,cache-mounts=true" ctx 2>"$T/a.log")
t_eq "A runs both RUNs" "$(ran "$T/a.log")" "RAN-cm RAN-one"
t_grep "A's cache mount starts empty" 'V=1 found:nothing' "$T/a.log"
t_ok "A exported an OCI layout" test -s "$T/u/cache/index.json"

id_b=$(as_user b ./mkimg build --progress=plain --cache-from type=local,src=cache ctx 2>"$T/b.log")
t_eq "B runs no RUN" "$(ran "$T/b.log")" ""
t_eq "B's image ID is A's" "$id_b" "$id_a"
t_eq "B's image has A's file" "$(as_user b ./mkimg run "$id_b" cat /one 2>&1)" "one"
as_user b ./mkimg build --progress=plain --build-arg V=2 --cache-from type=local,src=cache \
    ctx >/dev/null 2>"$T/b2.log"
t_eq "B with another ARG runs only the cache-mount RUN" "$(ran "$T/b2.log")" "RAN-cm"
t_grep "... and finds A's cache mount, owner kept" 'V=2 found:on-1 owner:1000' "$T/b2.log"
t_eq "A's store is clean" "$(as_user a ./mkimg fsck 2>&1)" "store is clean"
t_eq "B's store is clean" "$(as_user b ./mkimg fsck 2>&1)" "store is clean"
t_done
