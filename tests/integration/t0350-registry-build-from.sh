#!/usr/bin/env bash
# FROM and COPY --from pull a missing base image from a registry (--pull=missing, the
# default); --pull=never stays offline; --pull=always pulls a moved tag again.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi
t_import_busybox
t_ok "push the base" "$MKIMG" push -q busybox "$REG/base/bb:1"
export MKIMG_ROOT=$T/store2 # a build machine that has never seen the base
mkdir -p "$T/c"
cat >"$T/c/Dockerfile" <<DF
FROM $REG/base/bb:1
RUN echo built > /built
COPY --from=$REG/base/bb:1 /etc/passwd /copied-passwd
DF
"$MKIMG" build --pull=never -t app "$T/c" >/dev/null 2>"$T/err"; rc=$?
t_eq "--pull=never fails offline" "$rc" 1
t_grep "--pull=never message" "^mkimg: Dockerfile:1: base image \"$REG/base/bb:1\": image not in the store" "$T/err"
t_ok "FROM pulls the missing base" "$MKIMG" build -t app "$T/c"
t_ok "the base is now in the store" "$MKIMG" inspect "$REG/base/bb:1"
umoci unpack --image "$MKIMG_ROOT:app:latest" "$T/u" >/dev/null 2>&1
t_eq "RUN ran on the pulled base" "$(cat "$T/u/rootfs/built")" built
t_ok "COPY --from the registry image" cmp "$T/u/rootfs/copied-passwd" "$T/bbroot/etc/passwd"
gets=$(reg_count GET '/v2/base/bb/blobs/[^ ]*')
t_ok "the first build fetched blobs" test "$gets" -gt 0
t_ok "rebuild with the base present" "$MKIMG" build -t app "$T/c"
t_eq "--pull=missing does not fetch a present base again" "$(reg_count GET '/v2/base/bb/blobs/[^ ]*')" "$gets"
m=$(reg_count '(GET|HEAD)' '/v2/base/bb/manifests/[^ ]*')
t_ok "--pull=always" "$MKIMG" build --pull=always -t app "$T/c"
t_ok "--pull=always asked the registry again" test "$(reg_count '(GET|HEAD)' '/v2/base/bb/manifests/[^ ]*')" -gt "$m"
t_ok "build --push" "$MKIMG" build -q --push -t "$REG/app/built:1" "$T/c"
t_ok "skopeo sees the pushed build" skopeo inspect --tls-verify=false "docker://$REG/app/built:1"
reg_stop
t_done
