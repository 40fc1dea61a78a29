#!/usr/bin/env bash
# build --output: the result also as an OCI or Docker archive, an OCI layout, a rootfs tar or
# a directory; checked with skopeo and tar.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
o=$T/out; mkdir -p "$o"
t_ok "build with five outputs" "$MKIMG" build -q -t hello \
    --output "type=oci,dest=$o/oci.tar" --output "type=docker,dest=$o/docker.tar" \
    --output "type=oci,dest=$o/layout/" --output "type=tar,dest=$o/rootfs.tar" \
    -o "$o/rootfs" "$MKIMG_TOP/samples/hello"
t_ok "skopeo reads the oci-archive" skopeo inspect "oci-archive:$o/oci.tar"
t_ok "skopeo reads the docker-archive" skopeo inspect "docker-archive:$o/docker.tar"
t_ok "skopeo reads the OCI layout" skopeo inspect "oci:$o/layout"
t_grep "the rootfs tar holds the built file" '^app/data/greeting.txt$' <(tar tf "$o/rootfs.tar" 2>/dev/null)
t_ok "the rootfs tar has no whiteouts" bash -c "! tar tf '$o/rootfs.tar' | grep -q '\.wh\.'"
t_eq "type=local wrote the tree" "$(cat "$o/rootfs/app/data/greeting.txt")" "hello from mkimg"
t_ok "a deleted file is not in the exported tree" test ! -e "$o/rootfs/tmp/scratch.txt"
t_ok "no temp files beside the outputs" bash -c "! ls -A '$o' | grep -qE '\\.tmp\\.|mkimg-tmp'"
"$MKIMG" build -q -t hello --output "type=zip,dest=$o/x" "$MKIMG_TOP/samples/hello" >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown output type is a usage error" "$rc" 2
# Smallest reproducer: the tar writer used its freed hash when the reader went away (SIGSEGV).
"$MKIMG" build -q -o type=tar,dest=- "$MKIMG_TOP/samples/hello" 2>"$T/err" | head -c 100 >/dev/null
t_eq "a reader that stops early: an ordinary error, not a crash" "$(cat "$T/err")" \
    'mkimg: writing the layer tar: write: Broken pipe'
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
