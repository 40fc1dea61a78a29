#!/usr/bin/env bash
# SOURCE_DATE_EPOCH: two builds of the same context on two store roots, at different times,
# give the same manifest digest (config timestamps and layer mtimes clamped to the epoch).
. "$(dirname "$0")/../lib/test-lib.sh"

export SOURCE_DATE_EPOCH=1700000000
"$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/rootfs"
digest() { "$MKIMG" inspect hello | jq -r '.[0].Digest'; }
for root in a b; do
    export MKIMG_ROOT=$T/$root
    t_ok "import ($root)" "$MKIMG" import "$T/rootfs" busybox:latest
    t_ok "build ($root)" "$MKIMG" build -q -t hello "$MKIMG_TOP/samples/hello"
    eval "d_$root=\$(digest)"
    sleep 1.1 # a second later: unclamped mtimes would differ
done
t_eq "same manifest digest on two roots" "$d_a" "$d_b"
t_eq "config created is the epoch" \
    "$(skopeo inspect --config "oci:$T/a:hello:latest" | jq -r .created)" "2023-11-14T22:13:20Z"
unset SOURCE_DATE_EPOCH
export MKIMG_ROOT=$T/c
"$MKIMG" import "$T/rootfs" busybox:latest >/dev/null
"$MKIMG" build -q -t hello "$MKIMG_TOP/samples/hello" >/dev/null
t_ok "without SOURCE_DATE_EPOCH the digest differs (the test can fail)" test "$(digest)" != "$d_a"
t_done
